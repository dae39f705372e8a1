"""Real photographs shipped inside installed packages, cut into patches.

Train and test patches come from different photos; which photo went where is recorded in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / name
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return load


# Photographs (not drawings or synthetic renders) that load without a download.
TRAIN_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "skimage:astronaut": _skimage("astronaut"),
    "skimage:coffee": _skimage("coffee"),
    "skimage:rocket": _skimage("rocket"),
    "skimage:hubble_deep_field": _skimage("hubble_deep_field"),
    "skimage:immunohistochemistry": _skimage("immunohistochemistry"),
    "skimage:camera": _skimage("camera"),
    "skimage:grass": _skimage("grass"),
    "skimage:brick": _skimage("brick"),
    "sklearn:china.jpg": _sklearn("china.jpg"),
}
TEST_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "skimage:chelsea": _skimage("chelsea"),
    "skimage:retina": _skimage("retina"),
    "skimage:moon": _skimage("moon"),
    "skimage:gravel": _skimage("gravel"),
    "skimage:coins": _skimage("coins"),
    "sklearn:flower.jpg": _sklearn("flower.jpg"),
    "matplotlib:grace_hopper.jpg": _matplotlib("grace_hopper.jpg"),
}


def as_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3]).astype(np.uint8)


def cut_patches(
    photos: dict[str, Callable[[], np.ndarray]], count: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``count`` random patches (uint8 [N, size, size, 3]) spread evenly over ``photos``.

    Each patch is a random square of ``size`` to ``3 * size`` pixels (scale jitter), resized to ``size``
    with antialiasing, and flipped horizontally half the time. Returns the patches and their source names.
    """
    names = sorted(photos)
    images = {name: as_rgb(photos[name]()) for name in names}
    patches = np.empty((count, size, size, 3), dtype=np.uint8)
    sources = []
    for index in range(count):
        name = names[index % len(names)]
        image = images[name]
        height, width = image.shape[:2]
        side = int(rng.integers(size, min(3 * size, height, width) + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(image[top : top + side, left : left + side])
        if side != size:
            crop = crop.resize((size, size), Image.Resampling.LANCZOS)
        patch = np.asarray(crop)
        patches[index] = patch[:, ::-1] if rng.random() < 0.5 else patch
        sources.append(name)
    return patches, sources
