"""Score-level fusion of any registered detectors: each member is fitted and scored as on its own, and their
scores are combined per image by a ``rule``.

**Members** (param ``members``): a list, or a comma-separated string, of detector entries. An entry is a
name (``"npr"``), a name with parameters in brackets, written like a leaderboard label
(``"clip_probe[backbone=efficientnet_lite0,C=0.5]"``, values read as TOML, as ``--param`` reads them), or a
table ``{ name = "clip_probe", params = { backbone = "efficientnet_lite0" } }`` (TOML protocols)::

    [detector_params.fusion]
    members = ["npr", { name = "clip_probe", params = { backbone = "efficientnet_lite0" } }]
    rule = "stacked"

    dfzoo run ... --detector fusion --param 'members=npr,clip_probe[backbone=efficientnet_lite0]'

**Common scale.** A member whose ``describe()`` states threshold 0.5 scores probabilities: its score ``p``
becomes ``logit(p)`` (``p`` clipped to [1e-6, 1 - 1e-6]). Any other member's score ``s`` is standardised to
``(s - mean) / std`` with the mean and standard deviation of its scores on calibration images (below).

**Rules.**

- ``mean_logit``: the mean of the members' common-scale scores;
- ``max``: their maximum (flags an image any member flags);
- ``rank_mean``: the mean of each member's mid-rank of the score among its calibration scores (its empirical
  CDF, in [0, 1]: ranks against a fixed reference, so an image's score never depends on its batch);
- ``stacked``: a logistic regression (``C``) on the members' common-scale scores. The training set is split,
  seeded and stratified by label and generator: ``holdout_fraction`` of it (the *held-out part*) is kept from
  the members, which are fitted on the rest; the regression is fitted on the members' scores of the held-out
  part alone. Only the training split is ever used (the harness never shows ``fit`` a test image).
  Score = its probability of fake (threshold 0.5).

**Calibration images**: for ``stacked`` the held-out part; otherwise (members fitted on the whole training
set) up to ``calibration_size`` training images chosen by the run's seed; in-sample, so a member that
overfits looks more certain there than on new images. They are scored only when a rule or a member needs them.

A member that raises stops the fusion with :class:`FusionMemberError` naming the member and the stage. Saved
as the members' own saves (``members/<i>-<name>/``) plus ``fusion.json`` and ``ranks.npz``: no pickle.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from dfzoo import Detector, DetectorSpec, Param, ParamError, hookimpl
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext

RULES = ("mean_logit", "max", "rank_mean", "stacked")
PROBABILITY_THRESHOLD = 0.5  # a member whose describe() states this threshold scores probabilities
EPSILON = 1e-6  # probabilities are clipped to [EPSILON, 1 - EPSILON] before the logit
STATE_FILE, RANKS_FILE, MEMBERS_DIR = "fusion.json", "ranks.npz", "members"
ENTRY_KEYS = ("name", "params")
DEFAULTS: dict[str, Any] = {
    "members": ["npr", "fft_densenet"],  # two from-scratch CNNs on different views (pixel residual, spectrum)
    "rule": "mean_logit",
    "holdout_fraction": 0.25,
    "calibration_size": 1024,
    "C": 1.0,
}


class FusionMemberError(RuntimeError):
    """A member detector raised; the message names the member and the stage (fit or score)."""


# -- members ---------------------------------------------------------------------------------------------
def parse_members(value: Any) -> list[dict[str, Any]]:
    """``members`` in any accepted spelling -> ``[{"name": ..., "params": {...}}, ...]`` (see the module doc)."""
    items = _split_top_level(value) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"fusion: members must name at least one detector, got {value!r}")
    entries = []
    for item in items:
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - set(ENTRY_KEYS))
            if unknown or not isinstance(item.get("name"), str) or not isinstance(item.get("params", {}), Mapping):
                raise ValueError(
                    f"fusion: a member table needs name = <detector> and optional params = {{...}}: {item!r}"
                )
            entries.append({"name": item["name"], "params": dict(item.get("params", {}))})
            continue
        match = re.fullmatch(r"\s*([A-Za-z][\w.\-]*)\s*(?:\[(.*)\])?\s*", str(item), flags=re.DOTALL)
        if not match:
            raise ValueError(f"fusion: cannot read member {item!r}; write name or name[key=value,...]")
        params = {}
        for pair in _split_top_level(match.group(2) or ""):
            key, sep, raw = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"fusion: member {item!r}: {pair!r} is not key=value")
            params[key.strip()] = _toml_value(raw.strip())
        entries.append({"name": match.group(1), "params": params})
    return entries


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _toml_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def member_label(entry: Mapping[str, Any]) -> str:
    params = entry["params"]
    inner = ",".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in sorted(params.items()))
    return f"{entry['name']}[{inner}]" if inner else entry["name"]


# -- the detector ----------------------------------------------------------------------------------------
class Fusion(Detector):
    """Score-level ensemble of registered detectors: mean logit, max, rank mean or stacked logistic regression
    (members='npr,clip_probe[backbone=...]').

    Fits every member, then combines their scores by ``rule`` (see the module docstring)."""

    def __init__(self, **params: Any) -> None:
        import dfzoo

        entries = parse_members(params["members"])
        super().__init__(**{**params, "members": entries})
        if not 0.0 < float(params["holdout_fraction"]) < 1.0:
            raise ValueError(f"fusion: holdout_fraction must be in (0, 1), got {params['holdout_fraction']!r}")
        if int(params["calibration_size"]) < 2:
            raise ValueError(f"fusion: calibration_size must be >= 2, got {params['calibration_size']!r}")
        self.labels = [member_label(entry) for entry in entries]
        self.members: list[Detector] = []
        for entry, label in zip(entries, self.labels, strict=True):
            try:
                self.members.append(dfzoo.load_detector(entry["name"], **entry["params"]))
            except Exception as error:  # an unknown name or parameter: a configuration error, named as such
                raise ParamError(f"fusion member {label!r}: {error}") from error
        self.probability: list[bool] = []
        self.centre: list[float] = []
        self.spread: list[float] = []
        self.reference: list[np.ndarray] = []  # sorted calibration scores per member (rank_mean)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.calibration_images = 0

    @property
    def rule(self) -> str:
        return str(self.params["rule"])

    def setup(self, context: RunContext) -> Self:
        super().setup(context)
        for member in self.members:
            member.setup(context)
        return self

    @contextmanager
    def _member_stage(self, index: int, stage: str) -> Iterator[None]:
        """Turn whatever member ``index`` raises in ``stage`` into a :class:`FusionMemberError` naming both."""
        try:
            yield
        except Exception as error:
            raise FusionMemberError(
                f"fusion member {self.labels[index]!r} failed in {stage}: {type(error).__name__}: {error}"
            ) from error

    def _member_scores(self, samples: Sequence[Sample], stage: str) -> np.ndarray:
        """``[N, members]`` raw scores; each member's skipped images are adopted as this detector's."""
        columns = []
        for index, member in enumerate(self.members):
            with self._member_stage(index, stage):
                scores = np.asarray(member.score(samples), dtype=np.float64)
            if scores.shape != (len(samples),):
                raise FusionMemberError(
                    f"fusion member {self.labels[index]!r} returned {scores.shape} scores for {len(samples)} images"
                )
            self.skipped.update(member.skipped)
            columns.append(scores)
        return np.column_stack(columns) if columns else np.zeros((len(samples), 0))

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(self, train: Sequence[Sample]) -> Self:
        from dfzoo.training import binary_labels, split_indices

        labels = np.asarray(binary_labels(train, self.name))
        seed = self.context.seed
        if self.rule == "stacked":
            groups = [(int(s.label), s.generator) for s in train]
            fit_idx, held_idx = split_indices(groups, float(self.params["holdout_fraction"]), seed)
            if len(set(labels[held_idx])) < 2 or len(set(labels[fit_idx])) < 2:
                raise ValueError(
                    f"fusion: stacked needs real and fake images in both parts of the training set "
                    f"({len(fit_idx)} for the members, {len(held_idx)} held out); use more training images"
                )
            fit_part, calibration = [train[i] for i in fit_idx], [train[i] for i in held_idx]
        else:
            fit_part = list(train)
            chosen = np.random.default_rng(seed).permutation(len(train))[: int(self.params["calibration_size"])]
            calibration = [train[i] for i in sorted(chosen)]
        for index, member in enumerate(self.members):
            with self._member_stage(index, "fit"):
                member.fit(fit_part)
            self.skipped.update(member.skipped)
        self.probability = [_states_probability(member) for member in self.members]
        count = len(self.members)
        self.centre, self.spread, self.reference = [0.0] * count, [1.0] * count, [np.zeros(0)] * count
        self.calibration_images = 0
        if self.rule in ("stacked", "rank_mean") or not all(self.probability):
            raw = self._member_scores(calibration, "fit (calibration scores)")
            self._calibrate(raw)
            if self.rule == "stacked":
                self._fit_stack(self._common_scale(raw), labels[held_idx])
        self.fitted = True
        return self

    def _calibrate(self, raw: np.ndarray) -> None:
        self.calibration_images = int(np.isfinite(raw).all(axis=1).sum())
        for index in range(raw.shape[1]):
            column = raw[:, index][np.isfinite(raw[:, index])]
            if column.size < 2:
                raise ValueError(f"fusion: member {self.labels[index]!r} gave fewer than two finite calibration scores")
            self.reference[index] = np.sort(column)
            if not self.probability[index]:
                spread = float(column.std())
                self.centre[index] = float(column.mean())
                self.spread[index] = spread if spread > 0 else 1.0

    def _fit_stack(self, features: np.ndarray, labels: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        usable = np.isfinite(features).all(axis=1)
        model = LogisticRegression(C=float(self.params["C"]), max_iter=1000)
        model.fit(features[usable], labels[usable])
        self.coef, self.intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])

    # -- scoring ---------------------------------------------------------------------------------------
    def _common_scale(self, raw: np.ndarray) -> np.ndarray:
        out = np.empty_like(raw)
        for index, probability in enumerate(self.probability):
            column = raw[:, index]
            if probability:
                clipped = np.clip(column, EPSILON, 1 - EPSILON)
                out[:, index] = np.log(clipped) - np.log1p(-clipped)
            else:
                out[:, index] = (column - self.centre[index]) / self.spread[index]
        return out

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        self._require_fitted()
        raw = self._member_scores(samples, "score")
        if self.rule == "rank_mean":
            ranks = np.column_stack([_mid_rank(self.reference[i], raw[:, i]) for i in range(raw.shape[1])])
            return ranks.mean(axis=1)
        common = self._common_scale(raw)
        if self.rule == "max":
            return common.max(axis=1)
        if self.rule == "stacked":
            assert self.coef is not None
            from scipy.special import expit

            return np.asarray(expit(common @ self.coef + self.intercept), dtype=np.float64)
        return common.mean(axis=1)

    def describe(self) -> dict[str, Any]:
        members = []
        for index, (entry, member) in enumerate(zip(self.params["members"], self.members, strict=True)):
            fitted = index < len(self.probability)
            scale = "pending (set at fit)"
            if fitted:
                scale = (
                    "logit" if self.probability[index] else f"(s - {self.centre[index]:.6g}) / {self.spread[index]:.6g}"
                )
            members.append({"label": self.labels[index], **entry, "scale": scale, "describe": member.describe() or {}})
        out: dict[str, Any] = {"rule": self.rule, "members": members, "calibration_images": self.calibration_images}
        if self.rule == "stacked":
            out |= {
                "holdout_fraction": self.params["holdout_fraction"],
                "stack_coef": None if self.coef is None else self.coef.tolist(),
                "stack_intercept": self.intercept,
                "threshold": PROBABILITY_THRESHOLD,
            }
        elif self.rule in ("mean_logit", "max") and self.probability and all(self.probability):
            out["threshold"] = 0.0  # a mean (or max) logit of 0 is the members' own 0.5
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        for index, member in enumerate(self.members):
            member.save(folder / MEMBERS_DIR / f"{index}-{member.name}")
        state = {
            "probability": self.probability,
            "centre": self.centre,
            "spread": self.spread,
            "coef": None if self.coef is None else self.coef.tolist(),
            "intercept": self.intercept,
            "calibration_images": self.calibration_images,
        }
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2))
        ranks: dict[str, Any] = {f"member_{i}": reference for i, reference in enumerate(self.reference)}
        np.savez(folder / RANKS_FILE, **ranks)

    def _load_state(self, folder: Path) -> None:
        import dfzoo
        from dfzoo.safeio import load_npz

        self.members = [
            dfzoo.load_fitted(folder / MEMBERS_DIR / f"{index}-{member.name}").setup(self.context)
            for index, member in enumerate(self.members)
        ]
        state = json.loads((folder / STATE_FILE).read_text())
        self.probability, self.centre, self.spread = state["probability"], state["centre"], state["spread"]
        self.coef = None if state["coef"] is None else np.asarray(state["coef"], dtype=np.float64)
        self.intercept, self.calibration_images = float(state["intercept"]), int(state["calibration_images"])
        ranks = load_npz(folder / RANKS_FILE)
        self.reference = [ranks[f"member_{i}"] for i in range(len(self.members))]


def _states_probability(member: Detector) -> bool:
    """A member scores probabilities when its describe() states the threshold 0.5."""
    threshold = (member.describe() or {}).get("threshold")
    return (
        isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and threshold == PROBABILITY_THRESHOLD
    )


def _mid_rank(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank among the sorted ``reference`` scores, in [0, 1] (NaN stays NaN)."""
    below = np.searchsorted(reference, values, side="left")
    at_or_below = np.searchsorted(reference, values, side="right")
    ranks = (below + at_or_below) / (2.0 * max(len(reference), 1))
    return np.where(np.isnan(values), np.nan, ranks)


@hookimpl
def dfzoo_detectors():
    from dfzoo.plugins.detectors.npr import SMOKE_PARAMS as NPR_SMOKE

    members = [{"name": "npr", "params": NPR_SMOKE}, {"name": "clip_probe", "params": {"backbone": "tiny_cnn"}}]
    yield DetectorSpec(
        name="fusion",
        factory=Fusion,
        params=DEFAULTS,
        weight_params=(),
        tags=("ensemble",),
        smoke_params={"members": members, "rule": "stacked"},
        param_schema={
            "members": Param(types=(list, tuple, str)),
            "rule": Param(choices=RULES),
            "calibration_size": Param(types=(int,)),
        },
    )
