"""Weights behind the LPIPS perceptual distance: torchvision's VGG16 trunk and the lpips package's linear heads.

The ``lpips`` wheel ships only its calibrated 1x1 linear layers; the VGG16 ImageNet trunk comes from
torchvision and is a separate download. Both are resolved like any dfzoo weights, so a result row can say
exactly which distance it used, and a missing trunk is an error (or a recorded fallback), never a random VGG.
"""

from __future__ import annotations

from pathlib import Path

from dfzoo import hookimpl

from ._specs import package_file, package_weights, torch_hub_weights

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_LINEAR = ("weights", "v0.1", "vgg.pth")


def _lpips_linear_file() -> Path | None:
    """The VGG linear-head checkpoint shipped inside the installed ``lpips`` package."""
    return package_file("lpips", *LPIPS_LINEAR)


@hookimpl
def dfzoo_weights():
    yield torch_hub_weights(
        "vgg16_imagenet",
        "torchvision VGG16 ImageNet-1k (IMAGENET1K_V1), the LPIPS-VGG trunk",
        "torchvision",
        VGG16_URL,
        "CC-BY-4.0 (Oxford VGG weights, via torchvision)",
        fetch_hint="python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\" "
        "(or put vgg16-397923af.pth in $DFZOO_WEIGHTS_DIR/vgg16_imagenet/)",
        hash_prefix="397923af",
    )
    yield package_weights(
        "lpips_vgg_lin",
        "LPIPS v0.1 linear heads for VGG (shipped inside the lpips wheel)",
        "lpips>=0.1.4",
        LPIPS_LINEAR[-1],
        _lpips_linear_file,
        "BSD-2-Clause",
        where="/".join(LPIPS_LINEAR),
    )
