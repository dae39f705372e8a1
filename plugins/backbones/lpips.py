"""Weights behind the LPIPS perceptual distance: torchvision's VGG16 trunk and the lpips package's linear heads.

The ``lpips`` wheel ships only its calibrated 1x1 linear layers; the VGG16 ImageNet trunk comes from
torchvision and is a separate download. Both are resolved like any dfzoo weights, so a result row can say
exactly which distance it used, and a missing trunk is an error (or a recorded fallback), never a random VGG.
"""

from __future__ import annotations

from pathlib import Path

from dfzoo import WeightsSpec, hookimpl

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"


def _torch_hub_checkpoint(filename: str) -> Path | None:
    """A file already in torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), never downloading."""
    from dfzoo.weights import torch_hub_file  # finds it without importing torch

    return torch_hub_file(filename)


def _download_vgg16() -> Path:
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / VGG16_FILE
    if not target.is_file():
        torch.hub.download_url_to_file(VGG16_URL, str(target), hash_prefix="397923af")
    return target


def _lpips_linear_file(net: str = "vgg", version: str = "0.1") -> Path | None:
    """The linear-head checkpoint shipped inside the installed ``lpips`` package."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "weights" / f"v{version}" / f"{net}.pth"
    return path if path.is_file() else None


@hookimpl
def dfzoo_weights():
    yield WeightsSpec(
        name="vgg16_imagenet",
        summary="torchvision VGG16 ImageNet-1k (IMAGENET1K_V1), the LPIPS-VGG trunk",
        library="torchvision",
        source=VGG16_URL,
        files=(VGG16_FILE,),
        find_local=lambda: _torch_hub_checkpoint(VGG16_FILE),
        download=_download_vgg16,
        fetch_hint="python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\" "
        f"(or put {VGG16_FILE} in $DFZOO_WEIGHTS_DIR/vgg16_imagenet/)",
        licence="CC-BY-4.0 (Oxford VGG weights, via torchvision)",
    )
    yield WeightsSpec(
        name="lpips_vgg_lin",
        summary="LPIPS v0.1 linear heads for VGG (shipped inside the lpips wheel)",
        library="package",
        source="lpips>=0.1.4 weights/v0.1/vgg.pth",
        files=("vgg.pth",),
        find_local=_lpips_linear_file,
        fetch_hint="pip install lpips",
        licence="BSD-2-Clause",
    )
