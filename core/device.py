"""Device choice in one place: CUDA when present (or asked for), the CPU otherwise."""
from __future__ import annotations

import os

import torch


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> ``$DFZOO_DEVICE`` or CUDA when available, else CPU; an explicit name is honoured."""
    if isinstance(requested, torch.device):
        return requested
    requested = requested or os.environ.get("DFZOO_DEVICE") or "auto"
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} asked for, but CUDA is not available on this machine")
    return device


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """Mixed precision on CUDA (float16), a no-op context on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.float16,
                          enabled=enabled and device.type == "cuda")
