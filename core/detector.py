"""The detector contract: ``fit(train)``, ``score(samples) -> float array`` (higher = more likely fake).

Every method in the zoo subclasses :class:`Detector`. The harness owns the image path: it hands a detector
sample *views* whose :meth:`~dfzoo.data.sample.Sample.load` decodes the image and applies the protocol's
perturbation (file paths are hidden), and it configures the detector with a :class:`RunContext`
(preprocessing policy, seed, device) before fitting and scoring. A method never needs to know which
benchmark or which perturbation it runs under, and cannot skip one by reading files itself.

Simple methods subclass :class:`ImageDetector` and write ``score_image(image) -> float``: decoding errors
become NaN scores with their reason recorded, and the run's preprocessing geometry is applied for them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from PIL import Image

from .calibration import Calibration, Decision, ThresholdPolicy
from .data.decode import ImageDecodeError
from .data.sample import Sample
from .plain import json_safe
from .transforms import PreprocessPolicy

if TYPE_CHECKING:
    from .predict import Prediction

META_FILE = "dfzoo-detector.json"
FORMAT_VERSION = 2  # 2: no pickle anywhere in a saved detector (format 1 probes were joblib pickles)


@dataclass(frozen=True)
class RunContext:
    """Run settings that are not the method's own parameters.

    Perturbations are not here: they travel with the samples (see :meth:`~dfzoo.data.sample.Sample.view`).
    ``device=None`` means CUDA when available. ``cache`` turns the shared feature cache on or off.
    """

    preprocess: PreprocessPolicy = field(default_factory=PreprocessPolicy)
    seed: int = 0
    device: str | None = None
    batch_size: int | None = None
    cache: bool = True
    progress: bool = True
    workdir: Path | None = None  # where a detector may keep checkpoints to resume training

    def with_(self, **changes: Any) -> RunContext:
        return replace(self, **changes)


class NotFittedError(RuntimeError):
    """``score`` was called on a trainable detector before ``fit`` or ``load``."""


class Detector(ABC):
    """Base class of every detector.

    Subclasses implement :meth:`fit` (trainable methods), :meth:`score`, and :meth:`_save_state` /
    :meth:`_load_state` for whatever they learn. ``name`` and ``params`` are set by the factory so a saved
    detector can be rebuilt by name; ``describe()`` adds what makes results comparable (backbone, weights
    identity, distances used...).
    """

    name: str = "detector"
    trainable: bool = True
    # how scores become labels and probabilities, recorded by `dfzoo fit` (and saved with the detector)
    threshold_policy: ThresholdPolicy | None = None
    calibration: Calibration | None = None

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = params
        self.context = RunContext()
        self.fitted = not self.trainable
        self.skipped: dict[str, str] = {}  # display name -> reason, for every image this detector could not use

    def record_skip(self, sample: Sample, reason: str) -> None:
        """Note that ``sample`` could not be used (the harness reports these in its rows)."""
        self.skipped[sample.display_name] = reason

    def images(self, samples: Sequence[Sample]) -> Iterator[tuple[int, Image.Image]]:
        """``(position, image)`` for every decodable sample: the view's perturbation applied, then the run's
        preprocessing geometry when it names a size. Undecodable samples are recorded and left out."""
        policy = self.context.preprocess
        for position, sample in enumerate(samples):
            try:
                image = sample.load()
            except ImageDecodeError as error:
                self.record_skip(sample, error.reason)
                continue
            yield position, policy.geometry(image) if policy.size else image

    def setup(self, context: RunContext) -> Self:
        """Adopt the harness's run settings (preprocessing, perturbations, seed, device)."""
        self.context = context
        return self

    def fit(self, train: Sequence[Sample]) -> Self:
        """Learn from labelled samples; a no-op for training-free methods."""
        self.fitted = True
        return self

    @abstractmethod
    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        """One float per sample, higher = more likely generated; NaN where an image could not be decoded."""

    def describe(self) -> dict[str, Any]:
        """What a result row must record to be comparable: at least the weights identity of every model."""
        return {}

    def extra_metrics(self, samples: Sequence[Sample]) -> dict[str, Any]:
        """Optional method-specific results on a test set (e.g. per-level accuracy of a hierarchy)."""
        return {}

    def shared_work(self) -> str | None:
        """A name for cached per-image work that jobs of other detectors may share (e.g. one backbone pass at
        the run's preprocessing), or None. Executors that split work below the job run :meth:`precompute` on
        chunks of the data, across workers, before the jobs sharing a name start. Called on a detector that
        is set up but has loaded no model: it must be cheap. A hint for grouping: the cache keys decide reuse."""
        return None

    def precompute(self, samples: Sequence[Sample]) -> None:
        """Fill the shared cache with this detector's per-image work for ``samples`` (views); fits nothing."""

    def predict(self, x: Any) -> Prediction:
        """Score one image or many (paths, a folder, PIL images, uint8 arrays, torch tensors) through the
        harness's image path: scores, labels at the recorded threshold, probabilities where calibrated."""
        from .predict import predict

        return predict(self, x)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in list(self.params.items())[:8])
        more = ", ..." if len(self.params) > 8 else ""
        state = "fitted" if self.fitted else "not fitted"
        if self.calibration is not None:
            state += f", calibrated ({self.calibration.method})"
        if self.threshold_policy is not None:
            state += f", threshold: {self.threshold_policy.describe()}"
        return f"<{self.name}({shown}{more}) {state}>"

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"{self.name}: call fit() (or load a saved detector) before score()")

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted detector to a folder: metadata (name, params) plus the method's own state."""
        self._require_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        if self.threshold_policy is not None or self.calibration is not None:
            Decision(self.threshold_policy, self.calibration).save(folder)
        meta = {
            "format": FORMAT_VERSION,
            "detector": self.name,
            "params": json_safe(self.params),
            "describe": json_safe(self.describe()),
            "skipped": json_safe(self.skipped),
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return folder

    def _save_state(self, folder: Path) -> None:
        """Write learned state into ``folder`` (training-free methods have none)."""

    def _load_state(self, folder: Path) -> None:
        """Read what :meth:`_save_state` wrote."""


class ImageDetector(Detector):
    """A training-free detector that scores one decoded image at a time: write :meth:`score_image`.

    The framework decodes, perturbs and brings each image to the run's preprocessing size (when the
    protocol sets one); an image that cannot be decoded gets a NaN score and its reason is recorded.
    """

    trainable = False

    @abstractmethod
    def score_image(self, image: Image.Image) -> float:
        """How likely ``image`` (8-bit RGB) is generated; higher = more likely fake."""

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        scores = np.full(len(samples), np.nan, dtype=np.float64)
        for position, image in self.images(samples):
            scores[position] = float(self.score_image(image))
        return scores


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a saved detector folder, once the folder is known to be safe to load: saved in this
    dfzoo's format and holding no pickle (refused before any of the method's state is read)."""
    from .safeio import refuse_pickles

    meta_file = Path(path) / META_FILE
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not a saved dfzoo detector (no {META_FILE})")
    meta = json.loads(meta_file.read_text())
    saved = meta.get("format") if isinstance(meta, dict) else None
    if isinstance(saved, int) and saved > FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved by a newer dfzoo (format {saved}; this one reads format {FORMAT_VERSION}): upgrade dfzoo"
        )
    if saved != FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved by an older dfzoo (format {saved}; this one reads format "
            f"{FORMAT_VERSION}, which holds no pickles): re-fit the detector and save it again"
        )
    refuse_pickles(path)
    return meta
