"""Small generated datasets for tests: real-like smooth images and fakes carrying a planted artefact."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A natural-looking smooth RGB image (low-frequency noise upsampled), uint8 HWC."""
    coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(image)


def planted_fake(rng: np.random.Generator, size: int = 32, period: int = 2, amplitude: float = 24.0) -> np.ndarray:
    """A smooth image plus a periodic grid (the checkerboard a transposed convolution leaves)."""
    base = smooth_image(rng, size).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    pattern = ((yy % period == 0) ^ (xx % period == 0)).astype(np.float32) * 2 - 1
    return np.clip(base + amplitude * pattern[..., None], 0, 255).astype(np.uint8)


def write_folder_dataset(root: Path, generators: dict[str, int] | None = None, per_class: int = 12,
                         size: int = 32, seed: int = 0) -> Path:
    """``root/<gen>/{0_real,1_fake}/*.png`` (ForenSynths layout); ``generators`` maps name -> grid period."""
    generators = generators or {"gan_a": 2, "gan_b": 4}
    rng = np.random.default_rng(seed)
    for name, period in generators.items():
        for label, folder in ((0, "0_real"), (1, "1_fake")):
            out = root / name / folder
            out.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = smooth_image(rng, size) if label == 0 else planted_fake(rng, size, period)
                Image.fromarray(pixels).save(out / f"{i:04d}.png")
    return root
