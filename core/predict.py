"""``detector.predict(x)``: score one image or many from Python, through the harness's image path.

``x`` may be a file or folder path, a list of them, a PIL image, a uint8 numpy array (H, W, 3) or (N, H, W, 3),
a torch tensor (C, H, W) or (N, C, H, W) (uint8, or float in [0, 1] as torchvision's ``ToTensor`` gives), or
a list mixing these. Each becomes a :class:`~dfzoo.data.sample.Sample` (in-memory images as ``Sample.image``)
and is handed to the detector as the harness hands it, a view whose ``load()`` decodes it, so preprocessing
is the benchmark's. The result carries scores, labels at the detector's recorded threshold and, where it was
calibrated, probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .calibration import DETECTOR, ThresholdPolicy
from .data.sample import Sample

if TYPE_CHECKING:
    from .detector import Detector

UNREADABLE = -1  # the label of an image that could not be decoded (its score is NaN)


@dataclass(frozen=True)
class Prediction:
    """Scores (higher = more likely generated), labels (1 generated, 0 real, -1 unreadable; ``None`` when the
    detector has no threshold), probabilities (``None`` unless calibrated), per image, in input order."""

    names: tuple[str, ...]
    scores: np.ndarray
    labels: np.ndarray | None
    probabilities: np.ndarray | None
    policy: ThresholdPolicy | None
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, float, int | None, float | None]]:
        """``(name, score, label, probability)`` per image."""
        for i, name in enumerate(self.names):
            label = None if self.labels is None else int(self.labels[i])
            probability = None if self.probabilities is None else float(self.probabilities[i])
            yield name, float(self.scores[i]), label, probability

    def _one(self, values: np.ndarray | None) -> Any:
        if len(self) != 1:
            raise ValueError(f"this prediction holds {len(self)} images: index .scores / .labels instead")
        return None if values is None else values[0].item()

    @property
    def score(self) -> float:
        """The score of a one-image prediction."""
        return float(self._one(self.scores))

    @property
    def label(self) -> int | None:
        """The label of a one-image prediction (None without a threshold)."""
        return self._one(self.labels)

    @property
    def probability(self) -> float | None:
        """The calibrated probability of a one-image prediction (None when not calibrated)."""
        return self._one(self.probabilities)

    def __repr__(self) -> str:
        threshold = self.policy.describe() if self.policy else "none recorded (no labels)"
        counts = f"{len(self)} image{'s' if len(self) != 1 else ''}"
        if self.labels is not None and len(self) > 1:
            counts += f": {int((self.labels == 1).sum())} generated, {int((self.labels == 0).sum())} real"
        if self.errors:
            counts += f", {len(self.errors)} unreadable"
        lines = [f"Prediction({counts}; threshold: {threshold})"]
        shown = list(self)[:10]
        for i, (name, score, label, probability) in enumerate(shown):
            verdict = {None: "", 1: "generated", 0: "real", UNREADABLE: "unreadable"}[label]
            prob = "" if probability is None or np.isnan(probability) else f"  p={probability:.3f}"
            why = f"  ({self.errors[i]})" if i in self.errors else ""
            lines.append(f"  {name}: score {score:.4g}{prob}  {verdict}{why}".rstrip())
        if len(self) > len(shown):
            lines.append(f"  ... {len(self) - len(shown)} more")
        return "\n".join(lines)


def as_samples(x: Any) -> list[Sample]:
    """Samples (label -1) for anything :func:`predict` accepts; a clear ``TypeError``/``ValueError`` otherwise."""
    if isinstance(x, (str, Path)):
        path = Path(x).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such image file or folder: {path}")
        if path.is_dir():
            from .data.layouts import scan_images

            files = scan_images(path)
            if not files:
                raise ValueError(f"{path} holds no image files")
            return [Sample(path=f, label=-1) for f in files]
        return [Sample(path=path, label=-1)]
    if isinstance(x, Image.Image):
        return [Sample.from_image(x)]
    if type(x).__module__.split(".")[0] == "torch":
        return [Sample.from_image(Image.fromarray(a)) for a in _tensor_images(x)]
    if isinstance(x, np.ndarray):
        return [Sample.from_image(Image.fromarray(a)) for a in _array_images(x)]
    if isinstance(x, (list, tuple)):
        return [sample for item in x for sample in as_samples(item)]
    raise TypeError(
        f"cannot predict on a {type(x).__name__}: give a path, a folder, a PIL image, a uint8 numpy array "
        "(H, W, 3) or (N, H, W, 3), a torch tensor (C, H, W) or (N, C, H, W), or a list of these"
    )


def _array_images(array: np.ndarray) -> list[np.ndarray]:
    if array.dtype != np.uint8:
        raise ValueError(
            f"numpy images must be uint8 (0-255), got {array.dtype}: e.g. (x * 255).round().astype(np.uint8)"
        )
    if array.ndim == 3 and array.shape[-1] == 3:
        return [array]
    if array.ndim == 4 and array.shape[-1] == 3:
        return list(array)
    raise ValueError(f"numpy images must be (H, W, 3) or (N, H, W, 3) RGB, got shape {array.shape}")


def _tensor_images(tensor: Any) -> list[np.ndarray]:
    array = tensor.detach().cpu().numpy()
    if array.ndim not in (3, 4) or array.shape[-3] != 3:
        raise ValueError(f"torch images must be (3, H, W) or (N, 3, H, W), got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
            raise ValueError("float torch images must hold values in [0, 1] (as torchvision's ToTensor gives)")
        array = np.round(array * 255).astype(np.uint8)
    array = np.moveaxis(array, -3, -1)  # channels last, as PIL reads them
    return [array] if array.ndim == 3 else list(array)


def decision_policy(detector: Detector) -> ThresholdPolicy | None:
    """The recorded threshold policy, else the threshold the detector states for its scores, else None."""
    if detector.threshold_policy is not None:
        return detector.threshold_policy
    stated = detector.describe().get("threshold")
    if isinstance(stated, (int, float)) and not isinstance(stated, bool) and np.isfinite(stated):
        return ThresholdPolicy(DETECTOR, float(stated))
    return None


def predict(detector: Detector, x: Any) -> Prediction:
    """Score ``x`` with a fitted ``detector``; see the module docstring."""
    detector._require_fitted()
    samples = as_samples(x)
    if not samples:
        raise ValueError("nothing to predict on: the input holds no images")
    views = [s.view(None, hide_path=not reads_files(detector)) for s in samples]
    scores = np.asarray(detector.score(views), dtype=np.float64)
    probabilities = detector.calibration.probabilities(scores) if detector.calibration is not None else None
    policy = decision_policy(detector)
    labels = None
    if policy is not None:
        values = probabilities if policy.on == "probability" and probabilities is not None else scores
        labels = np.where(np.isnan(values), UNREADABLE, (values >= policy.threshold).astype(np.int64))
    errors = {
        i: detector.skipped.get(view.display_name, "unreadable") for i, view in enumerate(views) if np.isnan(scores[i])
    }
    names = tuple(s.display_name if s.file is not None else f"<image {i}>" for i, s in enumerate(samples))
    return Prediction(names, scores, labels, probabilities, policy, errors)


def reads_files(detector: Detector) -> bool:
    """Whether the detector's spec says it reads image files itself (then it is shown the path)."""
    from .registry import current_registry

    registry = current_registry()
    return detector.name in registry.names("detector") and registry.detector(detector.name).reads_files


__all__ = ["UNREADABLE", "Prediction", "as_samples", "decision_policy", "predict", "reads_files"]
