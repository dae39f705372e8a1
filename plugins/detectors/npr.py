"""NPR (Tan et al., Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable
Deepfake Detection, CVPR 2024, arXiv:2312.10461): generators up-sample, and up-sampling ties each pixel to its
neighbours. NPR feeds the *neighbouring-pixel-relationship* residual ``x - up(down(x))`` (nearest-neighbour
down-sampling by 2 then nearest up-sampling by 2, i.e. each pixel minus the top-left pixel of its 2x2 block)
to a small ResNet trained from scratch with BCE: ResNet-50 cut after its second stage (bottleneck blocks
3-4, width 64) with a 3x3 stride-2 stem. Score = sigmoid probability of fake.

The input is the RGB image with ImageNet mean/std; the residual is the network's first layer, so Grad-CAM
maps (``dfzoo explain``) sit on the image. ``layers`` / ``width`` give smaller networks for a CPU.

**Preprocessing matters.** Any resize (up or down, any filter) re-interpolates the pixels and overwrites the
2x2 relationships NPR reads. The harness's policy is used as given; the recommended one is a centre crop with
no resize (``preprocess = { mode = "center_crop", size = N }`` with N at most the smallest image side, or
``mode = "center_crop"`` without a size on same-size images). With ``mode = "resize"`` and no size, images
already at the model's input size (the native size of the first training image, at most 256) pass through
untouched; others are resized and lose the trace.
"""

from __future__ import annotations

from typing import Any

from dfzoo import Param, hookimpl
from dfzoo.training import SMOKE_TRAIN_PARAMS, TRAIN_PARAMS, ImageClassifierDetector, trained_detector_spec

PAPER = "Tan et al., CVPR 2024 (arXiv:2312.10461)"
DEFAULTS: dict[str, Any] = {
    "layers": [3, 4],  # bottleneck blocks per stage: ResNet-50's first two stages (the paper's)
    "width": 64,
    "augment": "flip",
    **TRAIN_PARAMS,
    "lr": 2e-4,  # the paper's Adam learning rate
}
SMOKE_PARAMS: dict[str, Any] = {
    "layers": [1],
    "width": 4,
    **SMOKE_TRAIN_PARAMS,
}


class NPR(ImageClassifierDetector):
    """NPR: neighbouring-pixel residual x - up(down(x)) into a shallow ResNet trained from scratch
    (up-sampling traces; use a centre crop, not a resize).

    Trained with BCE on the training set; ``explain`` maps sit on the image (the residual is the network's
    first layer).
    """

    def __init__(self, **params: Any) -> None:
        layers, width = params.get("layers", DEFAULTS["layers"]), params.get("width", DEFAULTS["width"])
        if not layers or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers):
            raise ValueError(f"npr: layers must be a non-empty list of block counts >= 1, got {layers!r}")
        if width < 1:
            raise ValueError(f"npr: width must be >= 1, got {width!r}")
        super().__init__(**params)

    @property
    def options(self) -> dict[str, Any]:
        """The parameters plus what :meth:`describe_training` reports for every single-model detector."""
        layers = "-".join(str(int(n)) for n in self.params["layers"])
        return {
            **self.params,
            "arch": f"npr_resnet[bottleneck {layers}, width {self.params['width']}]",
            "pretrained": False,
        }

    def _build(self, pretrained: bool) -> Any:
        import torch

        from dfzoo.features import module_digest
        from dfzoo.plugins.detectors._npr import NPRNet

        torch.manual_seed(self.context.seed)
        model = NPRNet([int(n) for n in self.params["layers"]], int(self.params["width"]))
        self.init_weights = f"random-init:{module_digest(model)}"
        return model

    def _pipeline(self, training: bool) -> Any:
        from dfzoo.training import augment_preset
        from dfzoo.transforms import Normalisation

        normalisation = Normalisation(size=int(self.image_size or 0))  # ImageNet mean/std, as the paper's code
        return self.pipeline(normalisation, training=training, augment=augment_preset(self.params["augment"]))

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_training(),
            "input": "x - nearest_up2(nearest_down2(x)) of the ImageNet-normalised RGB image",
            "recommended_preprocess": "center_crop without resize (a resize overwrites the up-sampling trace)",
        }


@hookimpl
def dfzoo_detectors():
    yield trained_detector_spec(
        "npr",
        NPR,
        paper=PAPER,
        params=DEFAULTS,
        weight_params=(),
        tags=("cnn", "residual"),
        smoke=SMOKE_PARAMS,
        schema={"layers": Param(types=(list, tuple)), "width": Param(types=(int,))},
    )
