"""Device choice in one place: CUDA when present (or asked for), the CPU otherwise.

:func:`pick_device` is also the up-front check: commands and the harness call it before any work, so an
unknown device string or a device this machine lacks is one clear error, not a failure in every row.
"""

from __future__ import annotations

import os
import re

import torch

DEVICE_ENV = "DFZOO_DEVICE"
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|mps)(:\d+)?$")
KNOWN = "auto, cpu, cuda, cuda:N or mps"


class DeviceError(ValueError):
    """A device string is unknown, or names a device this machine does not have."""


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> ``$DFZOO_DEVICE`` or CUDA when available, else CPU; an explicit name is honoured
    and checked (:class:`DeviceError` when it is unknown or absent here)."""
    if isinstance(requested, torch.device):
        return requested
    source = "device"
    if not requested and os.environ.get(DEVICE_ENV):
        requested, source = os.environ[DEVICE_ENV], f"${DEVICE_ENV}"
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not DEVICE_PATTERN.match(requested):
        raise DeviceError(f"unknown {source} {requested!r}; use {KNOWN}")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{source} {requested!r} asked for, but CUDA is not available on this machine "
                "(use --device cpu, or leave it out to pick CUDA only where present)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{source} {requested!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{source} {requested!r} asked for, but MPS is not available on this machine")
    return device


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """Mixed precision on CUDA (float16), a no-op context on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")
