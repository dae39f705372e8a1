"""RINE (Koutlis & Papadopoulos, ECCV 2024, arXiv:2402.19091): intermediate-block class tokens of a frozen ViT,
mixed by learned block weights, and a small head trained with cross-entropy plus a contrastive term."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dfzoo import Param, hookimpl
from dfzoo.frozen import frozen_detector_spec
from dfzoo.layers import TOKENS

if TYPE_CHECKING:
    from dfzoo.detector import Detector

# what backbone "auto" stands for: the first of these whose weights resolve here without a download
AUTO_BACKBONES = ("clip_vit_b16_float", "clip_vit_b16", "clip_vit_l14", "dino_vitb16")

PAPER = (
    "Koutlis & Papadopoulos, Leveraging Representations from Intermediate Encoder-blocks for Synthetic Image "
    "Detection, ECCV 2024 (arXiv:2402.19091)"
)


DEFAULTS: dict[str, Any] = {
    "backbone": "auto",  # first of clip_vit_b16_float, clip_vit_b16, clip_vit_l14, dino_vitb16 resolving here
    "pretrained": True,
    "weights_path": None,
    "batch_size": 32,
    "layers": "all",
    "token": "cls",
    "proj_dim": 128,
    "proj_layers": 2,
    "dropout": 0.5,
    "epochs": 30,
    "train_batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "contrastive": 0.1,
    "temperature": 0.1,
}


def _make(**params: Any) -> Detector:
    """RINE: learned softmax mix of a frozen ViT's intermediate class tokens + projection/MLP head."""
    from dfzoo.plugins.detectors._rine import Rine

    return Rine(**params)


@hookimpl
def dfzoo_detectors():
    yield frozen_detector_spec(
        "rine",
        _make,
        backbone_types=(str, object),
        paper=PAPER,
        params=DEFAULTS,
        auto_backbones=AUTO_BACKBONES,
        smoke_params={"backbone": "tiny_vit", "epochs": 3, "proj_dim": 16},
        tags=("vit", "intermediate-layers"),
        schema={
            "layers": Param(types=(str, int, list, tuple)),
            "token": Param(choices=TOKENS),
            "proj_layers": Param(choices=(1, 2, 3)),
        },
    )
