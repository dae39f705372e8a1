"""The detector contract: ``fit(train)``, ``score(samples) -> float array`` (higher = more likely fake).

Every method in the zoo subclasses :class:`Detector`. The harness configures a detector with a
:class:`RunContext` (preprocessing policy, perturbations, seed, device) before fitting and scoring, so a
method never needs to know which benchmark it runs in.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .data.sample import Sample
from .transforms import IDENTITY, Perturbation, PreprocessPolicy

META_FILE = "dfzoo-detector.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunContext:
    """Run settings that are not the method's own parameters.

    ``test_perturbation`` is applied to every image scored; ``train_perturbation`` to every training image.
    ``device=None`` means CUDA when available. ``cache`` turns the shared feature cache on or off.
    """

    preprocess: PreprocessPolicy = field(default_factory=PreprocessPolicy)
    seed: int = 0
    device: str | None = None
    batch_size: int | None = None
    train_perturbation: Perturbation = IDENTITY
    test_perturbation: Perturbation = IDENTITY
    cache: bool = True
    progress: bool = True
    workdir: Path | None = None  # where a detector may keep checkpoints to resume training

    def with_(self, **changes: Any) -> "RunContext":
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

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = params
        self.context = RunContext()
        self.fitted = not self.trainable

    def setup(self, context: RunContext) -> "Detector":
        """Adopt the harness's run settings (preprocessing, perturbations, seed, device)."""
        self.context = context
        return self

    def fit(self, train: Sequence[Sample]) -> "Detector":
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
        meta = {"format": FORMAT_VERSION, "detector": self.name, "params": _jsonable(self.params),
                "describe": _jsonable(self.describe())}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return folder

    def _save_state(self, folder: Path) -> None:
        """Write learned state into ``folder`` (training-free methods have none)."""

    def _load_state(self, folder: Path) -> None:
        """Read what :meth:`_save_state` wrote."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def read_meta(path: str | Path) -> dict[str, Any]:
    meta_file = Path(path) / META_FILE
    if not meta_file.exists():
        raise FileNotFoundError(f"{path} is not a saved dfzoo detector (no {META_FILE})")
    return json.loads(meta_file.read_text())
