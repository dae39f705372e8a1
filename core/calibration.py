"""Calibrated probabilities and the decision threshold a fitted detector records.

Detectors score on their own scales (a logit, a cosine difference, a reconstruction distance), so a score of
0.7 means different things for each. A :class:`Calibration` maps scores to probabilities of "generated",
fitted on scores of *held-out* training images (never the images the detector learnt from): Platt scaling
(a logistic curve, two numbers) or isotonic regression (a monotone step curve). scikit-learn fits them; the
result is stored as plain numbers in JSON and applied with numpy, so a saved detector holds no pickle.

A :class:`ThresholdPolicy` says how a score becomes a label: ``probability`` (calibrated probability at or
above 0.5), ``detector`` (the threshold the detector states for its own scores), or ``train_real_quantile``
(the score threshold that flags a fixed fraction of held-out or training real images, as the benchmark does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.sample import FAKE, REAL, Sample

METHODS = ("platt", "isotonic")
DECISION_FILE = "dfzoo-decision.json"
# policy names as result rows record them (dfzoo.benchmark.metrics), plus calibrated probabilities
PROBABILITY, DETECTOR, TRAIN_REAL_FPR = "probability", "detector", "train_real_quantile"


@dataclass(frozen=True)
class Calibration:
    """A fitted score -> probability map. ``params``: Platt ``{"a": [a], "b": [b]}`` (p = 1 / (1 + exp(-(a s +
    b)))); isotonic ``{"x": [...], "y": [...]}`` (linear between the steps, clipped at the ends, as
    scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` predicts)."""

    method: str
    params: dict[str, list[float]]
    n_real: int = 0
    n_fake: int = 0
    holdout_fraction: float = 0.0

    @classmethod
    def fit(cls, method: str, scores: Any, labels: Any, holdout_fraction: float = 0.0) -> Calibration:
        """Fit ``method`` on held-out ``scores`` with their 0/1 ``labels`` (NaN scores are left out)."""
        if method not in METHODS:
            raise ValueError(f"unknown calibration {method!r}; methods: {', '.join(METHODS)}")
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        kept = ~np.isnan(scores)
        scores, labels = scores[kept], labels[kept]
        n_real, n_fake = int((labels == REAL).sum()), int((labels == FAKE).sum())
        if n_real == 0 or n_fake == 0:
            raise ValueError(
                f"calibration needs held-out real and fake images with scores; got {n_real} real, {n_fake} fake "
                "(use more training data or a larger --calibration-fraction)"
            )
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1e6, max_iter=1000).fit(scores[:, None], labels)
            params = {"a": [float(model.coef_[0, 0])], "b": [float(model.intercept_[0])]}
        else:
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
            params = {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}
        return cls(method, params, n_real, n_fake, holdout_fraction)

    def probabilities(self, scores: Any) -> np.ndarray:
        """The probability of "generated" for each score; NaN stays NaN."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if self.method == "platt":
            z = self.params["a"][0] * scores + self.params["b"][0]
            with np.errstate(over="ignore"):
                return 1.0 / (1.0 + np.exp(-z))
        out = np.interp(scores, self.params["x"], self.params["y"])
        out[np.isnan(scores)] = np.nan
        return out


@dataclass(frozen=True)
class ThresholdPolicy:
    """How a score becomes a label: ``kind`` (:data:`PROBABILITY`, :data:`DETECTOR`, :data:`TRAIN_REAL_FPR`),
    the ``threshold`` (on probabilities for ``probability``, on raw scores otherwise; at or above = fake),
    and for ``train_real_fpr`` the false-positive rate and how many reals set it."""

    kind: str
    threshold: float
    fpr: float | None = None
    n_real: int | None = None

    @property
    def on(self) -> str:
        return "probability" if self.kind == PROBABILITY else "score"

    def describe(self) -> str:
        if self.kind == PROBABILITY:
            return f"calibrated probability >= {self.threshold:g}"
        if self.kind == TRAIN_REAL_FPR:
            return f"score >= {self.threshold:.6g} (flags {self.fpr:.0%} of {self.n_real} training reals)"
        return f"score >= {self.threshold:.6g} (the detector's own threshold)"


@dataclass
class Decision:
    """What a fitted detector records beside its state: the threshold policy and, where fitted, the calibration."""

    policy: ThresholdPolicy | None = None
    calibration: Calibration | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / DECISION_FILE
        data = {
            "policy": asdict(self.policy) if self.policy else None,
            "calibration": asdict(self.calibration) if self.calibration else None,
            **self.extra,
        }
        path.write_text(json.dumps(data, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Decision:
        """The decision saved in ``folder``, or an empty one for a detector saved without it."""
        path = Path(folder) / DECISION_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        policy, calibration = data.pop("policy", None), data.pop("calibration", None)
        return cls(
            ThresholdPolicy(**policy) if policy else None, Calibration(**calibration) if calibration else None, data
        )


def holdout_split(samples: Sequence[Sample], fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """``(fit, held_out)``: ``fraction`` of the reals and of the fakes (at least one of each) held out at random
    (seeded), so calibration sees both classes in the training data's proportions."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the calibration fraction must be between 0 and 1, got {fraction!r}")
    rng = np.random.default_rng(seed)
    fit: list[Sample] = []
    held: list[Sample] = []
    for label in (REAL, FAKE):
        group = [s for s in samples if s.label == label]
        if len(group) < 2:
            raise ValueError(f"calibration needs at least 2 {'real' if label == REAL else 'fake'} training images")
        order = rng.permutation(len(group))
        count = min(len(group) - 1, max(1, math.floor(fraction * len(group))))
        held += [group[i] for i in sorted(order[:count])]
        fit += [group[i] for i in sorted(order[count:])]
    return fit, held


__all__ = [
    "DECISION_FILE",
    "DETECTOR",
    "METHODS",
    "PROBABILITY",
    "TRAIN_REAL_FPR",
    "Calibration",
    "Decision",
    "ThresholdPolicy",
    "holdout_split",
]
