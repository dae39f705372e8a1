"""Supervised training of torch image models, shared by every trained detector (CNNSpot, FFT-DenseNet, ...).

What is here is method-agnostic:

* :class:`ImagePipeline` turns a decoded image into a model input (train perturbation, blur / JPEG, the run's
  preprocessing policy, random crop and flip, an optional post-transform such as a spectrum);
* :class:`SampleDataset` is a map-style dataset over :class:`~dfzoo.data.sample.Sample` (undecodable images
  are dropped from their batch and reported, never crash an epoch);
* :func:`train_model` is the loop: seeded train/validation split, Adam or SGD, mixed precision on CUDA,
  early stopping on the validation loss, a checkpoint after every epoch and resumption after an interruption;
* :func:`predict` runs a model over samples with NaN rows for undecodable images;
* :class:`TrainedImageDetector` is a :class:`~dfzoo.detector.Detector` base that wires all this to the
  :class:`~dfzoo.detector.RunContext` (device, seed, preprocessing, perturbations, workdir, progress).

torch is imported inside functions, so plugin modules can import this module at no cost.
"""

from __future__ import annotations

from .config import (
    AUGMENT_PRESETS,
    OPTIMISERS,
    SMOKE_TRAIN_PARAMS,
    TRAIN_PARAMS,
    TRAIN_SCHEMA,
    Augment,
    TrainConfig,
    augment_preset,
    classifier_params,
)
from .data import ImagePipeline, SampleDataset, SamplePipeline, binary_labels, collate, samples_digest, split_indices
from .detectors import NATIVE_SIZE_CAP, ImageClassifierDetector, SingleModelDetector, TrainedImageDetector
from .loop import (
    BEST_FILE,
    CHECKPOINT_FILE,
    Checkpointer,
    EpochRecord,
    TrainReport,
    bce_loss,
    ce_loss,
    predict,
    train_model,
)
from .models import (
    InitWeights,
    create_timm_model,
    load_backbone_state,
    load_module,
    reset_head,
    save_module,
    timm_normalisation,
)
from .spec import GPU_WHERE_AVAILABLE, trained_detector_spec

__all__ = [
    "AUGMENT_PRESETS",
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "GPU_WHERE_AVAILABLE",
    "NATIVE_SIZE_CAP",
    "OPTIMISERS",
    "SMOKE_TRAIN_PARAMS",
    "TRAIN_PARAMS",
    "TRAIN_SCHEMA",
    "Augment",
    "Checkpointer",
    "EpochRecord",
    "ImageClassifierDetector",
    "ImagePipeline",
    "InitWeights",
    "SampleDataset",
    "SamplePipeline",
    "SingleModelDetector",
    "TrainConfig",
    "TrainReport",
    "TrainedImageDetector",
    "augment_preset",
    "bce_loss",
    "binary_labels",
    "ce_loss",
    "classifier_params",
    "collate",
    "create_timm_model",
    "load_backbone_state",
    "load_module",
    "predict",
    "reset_head",
    "samples_digest",
    "save_module",
    "split_indices",
    "timm_normalisation",
    "train_model",
    "trained_detector_spec",
]
