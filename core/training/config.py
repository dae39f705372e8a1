"""Optimisation settings of a training run and the augmentation presets trained detectors share."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..spec import Param
from ..transforms import gaussian_blur, jpeg

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# -- configuration -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training run.

    ``patience`` epochs without a validation-loss improvement larger than ``min_delta`` stop training
    (``patience=0`` never stops early). ``freeze_norm`` keeps batch-norm layers in eval mode while training:
    a pretrained network keeps its ImageNet statistics, which fine-tunes far more reliably on small batches.
    ``val_fraction`` of the samples (stratified by target, seeded) are held out; with too few samples to hold
    any out, the training loss is monitored instead.
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    optimiser: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int = 3
    min_delta: float = 0.0
    amp: bool = True
    freeze_norm: bool = False  # keep batch-norm statistics fixed (fine-tuning pretrained nets on small batches)
    workers: int = -1  # decoding processes; -1: none on the CPU (cores train), up to 4 beside a GPU

    def __post_init__(self) -> None:
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be adam, adamw or sgd, got {self.optimiser!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        """The config fields found in a detector's params (others are ignored)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in params.items() if k in names})


#: The :class:`TrainConfig` fields a trained detector exposes as parameters (the others stay internal).
TRAIN_PARAM_FIELDS = ("epochs", "batch_size", "lr", "optimiser", "momentum", "weight_decay", "val_fraction", "patience")
#: The parameters every trained detector accepts, with CPU-friendly defaults: TrainConfig's own defaults, plus
#: the input size (None: the run's, else the data's) and freeze_norm (None: freeze when pretrained).
TRAIN_PARAMS: dict[str, Any] = {
    **{f.name: f.default for f in fields(TrainConfig) if f.name in TRAIN_PARAM_FIELDS},
    "image_size": None,
    "freeze_norm": None,
}


# -- augmentation and input pipeline -----------------------------------------------------------------------
@dataclass(frozen=True)
class Augment:
    """Train-time augmentation.

    ``blur_p`` / ``jpeg_p``: probability of a Gaussian blur with sigma ~ U[0, 3] and of a JPEG re-compression
    with quality ~ U{30..100}, applied at the image's own resolution (CNNSpot, Wang et al. 2020). ``crop``:
    reflect-pad by 1/8 of the input size and take a random crop of the input size (the scale is the same as at
    test time). ``flip``: horizontal flip with probability 0.5.
    """

    blur_p: float = 0.0
    jpeg_p: float = 0.0
    crop: bool = False
    flip: bool = False
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_quality: tuple[int, int] = (30, 100)

    @property
    def is_identity(self) -> bool:
        return not (self.blur_p or self.jpeg_p or self.crop or self.flip)

    def degrade(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Blur then JPEG, each with its probability (PIL in, PIL out)."""
        if self.blur_p and rng.random() < self.blur_p:
            image = gaussian_blur(*self.blur_sigma).fn(image, rng)  # type: ignore[misc]
        if self.jpeg_p and rng.random() < self.jpeg_p:
            low, high = self.jpeg_quality
            image = jpeg(high, quality_min=low).fn(image, rng)  # type: ignore[misc]
        return image

    def geometry(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random pad-and-crop and horizontal flip of a CHW array."""
        if self.crop:
            size_h, size_w = array.shape[1:]
            pad = max(1, min(size_h, size_w) // 8)
            padded = np.pad(array, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
            top, left = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
            array = padded[:, top : top + size_h, left : left + size_w]
        if self.flip and rng.random() < 0.5:
            array = array[:, :, ::-1]
        return np.ascontiguousarray(array)


AUGMENT_PRESETS: dict[str, Augment] = {
    "none": Augment(),
    "flip": Augment(flip=True),
    "crop_flip": Augment(crop=True, flip=True),
    "blur_jpeg_0.1": Augment(blur_p=0.1, jpeg_p=0.1, crop=True, flip=True),
    "blur_jpeg_0.5": Augment(blur_p=0.5, jpeg_p=0.5, crop=True, flip=True),
}


OPTIMISERS = ("adam", "adamw", "sgd")
TRAIN_SCHEMA: dict[str, Param] = {  # what TRAIN_PARAMS (and the augment preset) accept: DetectorSpec.param_schema
    "optimiser": Param(choices=OPTIMISERS),
    "augment": Param(choices=tuple(AUGMENT_PRESETS)),
    "image_size": Param(types=(int,), optional=True),
    "freeze_norm": Param(types=(bool,), optional=True),
}


def classifier_params(
    arch: str, *, pretrained: bool = True, weights: str = "", augment: str = "flip", **overrides: Any
) -> dict[str, Any]:
    """The parameters of a detector that trains a timm classifier (what ``create_timm_classifier`` reads):
    its architecture, ImageNet initialisation (``pretrained`` from a weights name, a file or timm's default),
    the augmentation preset and :data:`TRAIN_PARAMS`, with ``overrides`` (the detector's own) last."""
    return {
        "arch": arch,
        "pretrained": pretrained,
        "weights": weights,
        "weights_path": None,
        "augment": augment,
        **TRAIN_PARAMS,
        **overrides,
    }


# a tiny training run for a detector's ``smoke_params``: one epoch on 32 px images, no augmentation, no validation
SMOKE_TRAIN_PARAMS: dict[str, Any] = {
    "image_size": 32,
    "epochs": 1,
    "batch_size": 16,
    "augment": "none",
    "val_fraction": 0.0,
}


def augment_preset(name: str) -> Augment:
    """An augmentation by preset name (see :data:`AUGMENT_PRESETS`)."""
    try:
        return AUGMENT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation preset {name!r}; known: {', '.join(AUGMENT_PRESETS)}") from None
