"""Samples to model inputs: the input pipeline, the map-style dataset, batching, seeded splits."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..data.decode import ImageDecodeError
from ..data.sample import Sample
from ..transforms import Normalisation, PreprocessPolicy
from .config import Augment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagePipeline:
    """Decoded image -> model input array.

    Order: the augmentation's blur/JPEG, the preprocessing ``policy`` to ``normalisation.size`` with the
    model's mean/std, the augmentation's crop/flip, then ``post`` (e.g. a log spectrum). Without ``rng`` no
    augmentation is applied. The run's perturbation is not here: it comes with the sample view (``load``).
    """

    policy: PreprocessPolicy
    normalisation: Normalisation
    augment: Augment = Augment()
    post: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> np.ndarray:
        if rng is not None:
            image = self.augment.degrade(image, rng)
        array = self.policy.apply(image, self.normalisation)
        if rng is not None:
            array = self.augment.geometry(array, rng)
        if self.post is not None:
            array = self.post(array)
        return np.ascontiguousarray(array, dtype=np.float32)

    def load(self, sample: Sample, rng: np.random.Generator | None = None) -> np.ndarray:
        """Decode ``sample`` (with its view's perturbation) and run the pipeline (raises ImageDecodeError)."""
        return self(sample.load(), rng)


class SamplePipeline(Protocol):
    """What training and scoring need of an input pipeline; :class:`ImagePipeline` is the usual one, a
    detector with its own inputs (DIRE's precomputed maps) brings another."""

    @property
    def augment(self) -> Augment: ...

    def load(self, sample: Sample, rng: np.random.Generator | None = None) -> np.ndarray:
        """The model input of ``sample`` (augmented when ``rng`` is given); raises ImageDecodeError."""
        ...


# -- dataset -----------------------------------------------------------------------------------------------
class SampleDataset:
    """A map-style torch dataset over samples: item ``i`` is ``(input array, target, i)``.

    An undecodable image yields ``(None, reason, i)``; :func:`collate` drops it from the batch and the loop
    records it. Augmentation randomness is seeded by ``(seed, epoch, i)``: an epoch replays identically, which
    makes resumption after an interruption reproduce an uninterrupted run.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        targets: Sequence[Any],
        pipeline: SamplePipeline,
        *,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        if len(samples) != len(targets):
            raise ValueError(f"{len(samples)} samples but {len(targets)} targets")
        self.samples = list(samples)
        self.targets = list(targets)
        self.pipeline = pipeline
        self.augment = augment and not pipeline.augment.is_identity
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, Any, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment else None
        try:
            return self.pipeline.load(self.samples[index], rng), self.targets[index], index
        except ImageDecodeError as error:
            return None, error.reason, index


def collate(items: Sequence[tuple[np.ndarray | None, Any, int]]) -> tuple[Any, Any, list[int], list[tuple[int, str]]]:
    """Stack decodable items into tensors; return ``(inputs, targets, indices, [(index, reason), ...])``."""
    import torch

    good = [(array, target, index) for array, target, index in items if array is not None]
    bad = [(index, reason) for array, reason, index in items if array is None]
    if not good:
        return None, None, [], bad
    inputs = torch.from_numpy(np.stack([array for array, _, _ in good]))
    targets = torch.as_tensor(np.asarray([target for _, target, _ in good]))
    return inputs, targets, [index for _, _, index in good], bad


def split_indices(targets: Sequence[Any], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split stratified by target: ``fraction`` of each class (at least one when the class has two
    or more samples and ``fraction > 0``) goes to validation. Returns ``(train, val)`` index lists."""
    rng = np.random.default_rng(seed)
    by_class: dict[Any, list[int]] = {}
    for index, target in enumerate(targets):
        by_class.setdefault(_hashable(target), []).append(index)
    train, val = [], []
    for key in sorted(by_class, key=str):
        members = np.asarray(by_class[key])
        rng.shuffle(members)
        n_val = 0
        if fraction > 0 and len(members) >= 2:
            n_val = min(len(members) - 1, max(1, round(fraction * len(members))))
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)


def _hashable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value if not isinstance(value, list) else tuple(value)


def samples_digest(samples: Sequence[Sample], targets: Sequence[Any] | None = None) -> str:
    """A cheap identity of a training list (names, views, labels, generators, targets; no file is read)."""
    digest = hashlib.sha256()
    for position, sample in enumerate(samples):
        target = "" if targets is None else str(_hashable(targets[position]))
        digest.update(
            f"{sample.display_name}\t{sample.view_key}\t{sample.label}\t{sample.generator}\t{target}\n".encode()
        )
    return digest.hexdigest()[:16]


def binary_labels(samples: Sequence[Sample], who: str) -> list[int]:
    """The 0/1 labels of training samples; raises unless both classes are present."""
    labels = [int(s.label) for s in samples]
    if set(labels) != {0, 1}:
        raise ValueError(f"{who}: training needs both real (0) and fake (1) samples; got labels {sorted(set(labels))}")
    return labels
