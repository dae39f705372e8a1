"""Device choice and device-side habits in one place: CUDA when present (or asked for), the CPU otherwise.

:func:`pick_device` is also the up-front check: commands and the harness call it before any work, so an
unknown device string or a device this machine lacks is one clear error, not a failure in every row.
Beside it: the precision inference runs in (recorded in every row with the GPU's name), channels-last
placement of convolutional models on CUDA, asynchronous copies from pinned batches, and a batch size that
backs off when the device runs out of memory.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

DEVICE_ENV = "DFZOO_DEVICE"
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|mps)(:\d+)?$")
KNOWN = "auto, cpu, cuda, cuda:N or mps"
log = logging.getLogger(__name__)


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


def precision(device: torch.device | str) -> str:
    """The arithmetic dfzoo's inference runs in on ``device``: float16 autocast on CUDA, float32 elsewhere."""
    return "float16-autocast" if torch.device(device).type == "cuda" else "float32"


def describe_device(requested: str | torch.device | None = None) -> dict[str, str]:
    """What a result row records about where it ran: the device picked for ``requested``, the GPU's name
    (empty off CUDA) and the precision (:func:`precision`)."""
    device = pick_device(requested)
    gpu = ""
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device.index if device.index is not None else torch.cuda.current_device())
    return {"device": str(device), "gpu": gpu, "precision": precision(device)}


def prefers_channels_last(module: torch.nn.Module) -> bool:
    """Whether ``module`` is convolutional enough for the channels-last memory format to pay on a GPU (more
    than one 2-D convolution; a vision transformer has one, its patch embedding)."""
    return sum(isinstance(m, torch.nn.Conv2d) for m in module.modules()) > 1


def place_module(module: torch.nn.Module, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """``module`` on ``device``, in channels-last memory format where it helps (CUDA, convolutional);
    returns the module and whether channels-last is used (inputs should then be converted too)."""
    channels_last = device.type == "cuda" and prefers_channels_last(module)
    module = module.to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module, channels_last


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """A host batch (numpy array or tensor) on ``device``: copied asynchronously from pinned memory when the
    batch is pinned (the DataLoader pins decoded batches beside a GPU), channels-last when asked."""
    tensor = torch.as_tensor(batch)
    tensor = tensor.to(device, non_blocking=device.type == "cuda" and tensor.is_pinned())
    if channels_last and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device running out of memory (CUDA's own error, or the message other backends use)."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


class OomBackoff:
    """``compute(batch) -> rows`` run on slices of each batch, halving the slice after an out-of-memory
    error (and keeping the smaller size for later batches) down to one image, where the error is raised.

    Rows are per image, so splitting a batch never changes them (every backbone is tested batch-invariant).
    """

    def __init__(self, compute: Callable[[Any], Any], limit: int | None = None) -> None:
        self.compute = compute
        self.limit = limit  # the largest slice known to fit (None: whatever the caller batches)

    def __call__(self, batch: Any) -> np.ndarray:
        outs: list[np.ndarray] = []
        start, total = 0, len(batch)
        while start < total:
            size = min(self.limit or total, total - start)
            try:
                outs.append(np.asarray(self.compute(batch[start : start + size])))
                start += size
                continue
            except Exception as error:
                if size == 1 or not is_out_of_memory(error):
                    raise
            self.limit = size // 2  # outside the except block: the traceback's tensors are gone now
            log.warning("out of device memory with a batch of %d; retrying in batches of %d", size, self.limit)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return outs[0] if len(outs) == 1 else np.concatenate(outs)
