"""CNNSpot (Wang et al., CVPR 2020, arXiv:1912.11035): fine-tune an ImageNet CNN as a real/fake classifier.

Any timm architecture works (default ResNet-50 as in the paper; ``efficientnet_lite0`` has ImageNet weights
offline through the ``efficientnet_lite0`` backbone plugin). Training augments with Gaussian blur
(sigma ~ U[0, 3]) and JPEG re-compression (quality ~ U{30..100}), each with probability p (presets
``blur_jpeg_0.1`` and ``blur_jpeg_0.5``, the paper's two models), plus a random crop and a horizontal flip.
Score = sigmoid probability of fake; threshold 0.5.

``preset="cnnspot"`` fills every parameter left at its default with the paper-scale configuration of the
project issue: ResNet-50 ImageNet, SGD momentum 0.9, lr 1e-5, batch 128, 256 px, Blur+JPEG(0.5), up to 30
epochs with patience 5, batch norm training. (The authors' public code defaults to Adam, lr 1e-4, batch 64
and 224 px crops from 256 px images, and lowers the learning rate on plateaus, which this preset does not.) The default
configuration is small enough for a CPU: the dataset's native size (or the run's preprocess size), batch 32,
Adam lr 1e-4, 3 epochs, and batch-norm statistics frozen when pretrained (``freeze_norm``; without it a
pretrained net fine-tunes unreliably on small batches).
"""

from __future__ import annotations

from typing import Any

from dfzoo import Param, hookimpl
from dfzoo.training import (
    ImageClassifierDetector,
    SamplePipeline,
    classifier_params,
    trained_detector_spec,
)

PAPER = "Wang et al., CNN-generated images are surprisingly easy to spot... for now, CVPR 2020 (arXiv:1912.11035)"

DEFAULTS = classifier_params("resnet50", augment="blur_jpeg_0.1", preset=None)

PRESETS: dict[str, dict[str, Any]] = {
    "cnnspot": {
        "arch": "resnet50",
        "pretrained": True,
        "optimiser": "sgd",
        "momentum": 0.9,
        "lr": 1e-5,
        "batch_size": 128,
        "image_size": 256,
        "augment": "blur_jpeg_0.5",
        "epochs": 30,
        "patience": 5,
        "freeze_norm": False,
    },
}


def apply_preset(
    params: dict[str, Any], defaults: dict[str, Any], presets: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``params`` with the named preset filling every parameter still at its default value."""
    name = params.get("preset")
    if not name:
        return dict(params)
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(presets)}")
    return {**params, **{k: v for k, v in presets[name].items() if params.get(k, defaults.get(k)) == defaults.get(k)}}


class ResNetFinetune(ImageClassifierDetector):
    """CNNSpot: fine-tune an ImageNet CNN (timm arch, default ResNet-50) with blur+JPEG augmentation.

    A timm classifier with one logit, fine-tuned end to end with BCE.
    """

    @property
    def options(self) -> dict[str, Any]:
        return apply_preset(self.params, DEFAULTS, PRESETS)

    # -- model -------------------------------------------------------------------------------------------
    def _build(self, pretrained: bool) -> Any:
        return self.create_timm_classifier(1, pretrained)

    def _pipeline(self, training: bool) -> SamplePipeline:
        from dfzoo.training import augment_preset, timm_normalisation

        norm = timm_normalisation(self.model, int(self.image_size))  # type: ignore[arg-type]
        return self.pipeline(norm, training=training, augment=augment_preset(self.options["augment"]))

    # -- contract ----------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {**self.describe_training(), "preset": self.options["preset"]}


@hookimpl
def dfzoo_detectors():
    yield trained_detector_spec(
        "resnet_finetune",
        ResNetFinetune,
        params=DEFAULTS,
        paper=PAPER,
        weight_params=("arch", "weights"),
        tags=("cnn",),
        smoke={"arch": "resnet18", "pretrained": False},
        schema={"preset": Param(types=(str,), choices=tuple(PRESETS), optional=True)},
    )
