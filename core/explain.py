"""Grad-CAM explanations (through the maintained ``grad-cam`` package) and PNG overlays.

A detector that can explain itself offers ``explain(samples) -> list of HxW float maps`` (values in [0, 1],
at the model's input size, ``None`` for undecodable images); :func:`grad_cam` computes such maps for any
torch classifier, and :func:`write_overlays` draws them over the images the maps refer to. By default that
is the decoded image, with the map put back where the preprocessing took the model input from (the whole
image for ``resize``, the centre for ``center_crop``). A detector whose input is not the image itself (a
spectrum) offers ``explain_view(samples) -> list of PIL images`` at its input size, and maps are drawn on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .data.decode import ImageDecodeError
from .data.sample import Sample
from .plain import slug
from .transforms import CENTER_CROP, SHORTEST_SIDE, PreprocessPolicy


class CoarseMapWarning(UserWarning):
    """Grad-CAM looked at a 1x1 feature map: the "map" is one value spread over the image (no location)."""


def target_layer(model: Any) -> Any:
    """The layer Grad-CAM looks at: timm's last feature stage, else the model's last 2-D conv/norm layer."""
    import torch

    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1] if isinstance(info, list) else None
        name = last.get("module") if isinstance(last, dict) else None
        if name:
            return model.get_submodule(name)
    candidates = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no 2-D convolution for Grad-CAM to look at")
    return candidates[-1]


def grad_cam(model: Any, inputs: Any, *, layer: Any = None, category: int = 0) -> np.ndarray:
    """Grad-CAM maps ``[B, H, W]`` in [0, 1] for output ``category`` of ``model`` on the input batch.

    For a single-logit fake detector ``category=0`` shows what raises the fake logit.
    """
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = layer if layer is not None else target_layer(model)
    was_training = model.training
    shapes: list[tuple[int, ...]] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(getattr(out, "shape", ()))))
    try:
        with torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as cam:
            maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(category)] * len(inputs))
    finally:
        hook.remove()
        model.train(was_training)
    if shapes and len(shapes[-1]) == 4 and shapes[-1][-2:] == (1, 1):
        warnings.warn(
            f"Grad-CAM: the feature map of {type(layer).__name__} is 1x1 for {tuple(inputs.shape[-2:])} px inputs, "
            "so the map is one value spread over the whole image and shows no location; use a larger input size "
            "(e.g. --size / the protocol's preprocessing size) or pass a layer with spatial extent",
            CoarseMapWarning,
            stacklevel=2,
        )
    return np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0)


def explain_batches(
    model: Any,
    samples: Sequence[Sample],
    pipeline: Any,
    *,
    device: Any,
    batch_size: int = 16,
    category: int = 0,
    layer: Any = None,
) -> list[np.ndarray | None]:
    """Grad-CAM maps for ``samples`` through a :class:`dfzoo.training.ImagePipeline` (``None`` if undecodable)."""
    import torch

    from .features import iter_batches

    maps: list[np.ndarray | None] = [None] * len(samples)
    model.eval()
    for batch in iter_batches(samples, pipeline.load, batch_size):
        if batch.indices:
            out = grad_cam(model, torch.from_numpy(batch.array).to(device), layer=layer, category=category)
            for row, position in enumerate(batch.indices):
                maps[position] = out[row]
    return maps


def map_to_image(cam: np.ndarray, size: tuple[int, int], policy: PreprocessPolicy | None = None) -> np.ndarray:
    """Bring a model-input map back onto an image of ``size`` (width, height) as the policy took it out:
    ``resize`` stretched the whole image; ``center_crop`` took a square of the input size from the middle;
    ``shortest_side`` took the middle square of side min(width, height) (then scaled it)."""
    width, height = size
    if policy is None or policy.mode not in (CENTER_CROP, SHORTEST_SIDE):
        return _resize_map(cam, (width, height))
    crop = min(width, height) if policy.mode == SHORTEST_SIDE else policy.size or cam.shape[0]
    full = np.zeros((height, width), dtype=np.float32)
    inner = _resize_map(cam, (crop, crop))
    # the crop's offset in the (possibly reflect-padded) image; the padded part falls outside and is dropped
    left, top = (width - crop) // 2, (height - crop) // 2
    src_x, src_y = max(0, -left), max(0, -top)
    dst_x, dst_y = max(0, left), max(0, top)
    w, h = min(crop - src_x, width - dst_x), min(crop - src_y, height - dst_y)
    full[dst_y : dst_y + h, dst_x : dst_x + w] = inner[src_y : src_y + h, src_x : src_x + w]
    return full


def _resize_map(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def overlay(image: Image.Image, cam: np.ndarray, image_weight: float = 0.5) -> Image.Image:
    """The map as a JET heat map blended over ``image`` (same size as ``image``)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if cam.shape != rgb.shape[:2]:
        cam = _resize_map(cam, image.size)
    return Image.fromarray(show_cam_on_image(rgb, cam, use_rgb=True, image_weight=image_weight))


def write_overlays(detector: Any, samples: Sequence[Sample], out: str | Path) -> list[Path | None]:
    """Explain ``samples`` with ``detector`` and write ``<index>_<name>_gradcam.png`` into ``out``.

    Returns one path per sample (``None`` where the image could not be decoded).
    """
    explain = getattr(detector, "explain", None)
    if explain is None:
        raise ValueError(f"{detector.name} cannot explain its scores (it has no explain())")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    maps = explain(samples)
    view = getattr(detector, "explain_view", None)
    views = view(samples) if view is not None else [None] * len(samples)
    policy = detector.context.preprocess
    written: list[Path | None] = []
    for index, (sample, cam, background) in enumerate(zip(samples, maps, views, strict=True)):
        if cam is None:
            written.append(None)
            continue
        if background is None:
            try:
                background = sample.load()
            except ImageDecodeError:
                written.append(None)
                continue
            cam = map_to_image(cam, background.size, policy)
        stem = slug(sample.file.stem if sample.file else "image", fallback="image")
        path = folder / f"{index:04d}_{stem}_gradcam.png"
        overlay(background, cam).save(path)
        written.append(path)
    return written


__all__ = [
    "CoarseMapWarning",
    "explain_batches",
    "grad_cam",
    "map_to_image",
    "overlay",
    "target_layer",
    "write_overlays",
]
