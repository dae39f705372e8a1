"""Preprocessing policies and named perturbations.

Preprocessing brings any image to a model's input (the *policy* picks resize or centre crop; the model's
own normalisation always follows). Perturbations (blur, JPEG, colour jitter...) are named and parameterised
so one spelling, e.g. ``jpeg:quality=75``, means the same thing in training, testing and in result rows.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

if TYPE_CHECKING:
    from .registry import Registry

RESIZE, CENTER_CROP, SHORTEST_SIDE = "resize", "center_crop", "shortest_side"
PREPROCESS_MODES = (RESIZE, CENTER_CROP, SHORTEST_SIDE)


@dataclass(frozen=True)
class Normalisation:
    """A model's own input convention: size, mean, std and interpolation (travels with the model)."""

    size: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class PreprocessPolicy:
    """How a benchmark brings images to the model's ``size`` x ``size`` input.

    - ``resize``: straight to ``size`` x ``size`` (stretches images that are not square);
    - ``center_crop``: the central ``size`` x ``size`` pixels, no resampling (reflect-pads smaller images);
    - ``shortest_side``: CLIP's preprocessing: resize (keeping the aspect ratio) so the shorter side is
      ``size``, then take the central ``size`` x ``size``. Every image is resampled by a factor that depends
      only on its shorter side and nothing is stretched, so a set mixing sizes and shapes carries no
      shape shortcut (a 2:1 image and a 1:1 image both come out square and undistorted).

    ``size=None`` uses the model's own input size.
    """

    mode: str = RESIZE
    size: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESS_MODES:
            raise ValueError(f"preprocess mode must be one of {', '.join(PREPROCESS_MODES)}; got {self.mode!r}")

    @property
    def key(self) -> str:
        return f"{self.mode}:{self.size or 'model'}"

    def geometry(
        self, image: Image.Image, default_size: int | None = None, interpolation: str = "bicubic"
    ) -> Image.Image:
        """The policy's geometry to ``size`` (or ``default_size``); unchanged without either."""
        size = self.size or default_size
        if not size:
            return image
        if self.mode == RESIZE:
            return image.resize((size, size), _RESAMPLE[interpolation]) if image.size != (size, size) else image
        if self.mode == SHORTEST_SIDE:
            image = shortest_side(image, size, interpolation)
        return center_crop(image, size)

    def apply(self, image: Image.Image, normalisation: Normalisation) -> np.ndarray:
        """PIL image -> float32 CHW array, geometry by this policy, normalised as the model expects."""
        resample = _RESAMPLE[normalisation.interpolation]
        image = self.geometry(image, normalisation.size, normalisation.interpolation)
        if image.size != (normalisation.size, normalisation.size):
            image = image.resize((normalisation.size, normalisation.size), resample)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        array = (pixels - np.asarray(normalisation.mean, dtype=np.float32)) / np.asarray(
            normalisation.std, dtype=np.float32
        )
        return np.ascontiguousarray(array.transpose(2, 0, 1))


_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def shortest_side(image: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Resize so the shorter side is ``size``, keeping the aspect ratio (the longer side is rounded)."""
    width, height = image.size
    if min(width, height) == size:
        return image
    scale = size / min(width, height)
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(target, _RESAMPLE[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Centre crop to ``size``; smaller images are reflect-padded first so nothing is rescaled."""
    width, height = image.size
    if width < size or height < size:
        array = np.asarray(image)
        pad_h, pad_w = max(0, size - height), max(0, size - width)
        pad = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
        image = Image.fromarray(np.pad(array, pad, mode="reflect" if min(width, height) > 1 else "edge"))
        width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


# -- perturbations ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Perturbation:
    """A named image-to-image function; ``key`` (e.g. ``jpeg:quality=75``) identifies it in caches and rows.

    ``apply(image, rng)`` must be deterministic given ``rng``; :meth:`__call__` seeds ``rng`` from the image
    content and ``seed`` so the same image is always perturbed the same way.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    fn: Callable[[Image.Image, np.random.Generator], Image.Image] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(self.params.items()))

    @property
    def is_identity(self) -> bool:
        return self.fn is None

    def __call__(self, image: Image.Image, seed: int = 0) -> Image.Image:
        if self.fn is None:
            return image
        digest = hashlib.blake2b(image.tobytes()[:65536], digest_size=8, key=str(seed).encode()).digest()
        return self.fn(image, np.random.default_rng(int.from_bytes(digest, "little")))


IDENTITY = Perturbation("none")


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_perturbation(text: str) -> tuple[str, dict[str, Any]]:
    """``"jpeg:quality=75,x=1"`` -> ``("jpeg", {"quality": 75, "x": 1})``; values are int, float or str."""
    name, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, raw = part.partition("=")
        if not sep:
            raise ValueError(f"perturbation parameter {part!r} in {text!r} is not key=value")
        params[key.strip()] = _number(raw.strip())
    return name, params


def _number(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def gaussian_blur(sigma: float = 1.0, sigma_max: float | None = None) -> Perturbation:
    """Gaussian blur with ``sigma`` (or uniform in [sigma, sigma_max] when given, as CNNSpot augments)."""

    def fn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        s = sigma if sigma_max is None else float(rng.uniform(sigma, sigma_max))
        return image.filter(ImageFilter.GaussianBlur(radius=s))

    params = {"sigma": sigma} | ({"sigma_max": sigma_max} if sigma_max is not None else {})
    return Perturbation("blur", params, fn)


def jpeg(quality: int = 75, quality_min: int | None = None) -> Perturbation:
    """JPEG re-compression at ``quality`` (or uniform in [quality_min, quality])."""

    def fn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        q = quality if quality_min is None else int(rng.integers(quality_min, quality + 1))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=q)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")

    params = {"quality": quality} | ({"quality_min": quality_min} if quality_min is not None else {})
    return Perturbation("jpeg", params, fn)


def colour_jitter(brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2) -> Perturbation:
    """Random brightness, contrast and saturation factors in [1 - x, 1 + x]."""

    def fn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        for enhancer, amount in (
            (ImageEnhance.Brightness, brightness),
            (ImageEnhance.Contrast, contrast),
            (ImageEnhance.Color, saturation),
        ):
            if amount:
                image = enhancer(image).enhance(float(rng.uniform(1 - amount, 1 + amount)))
        return image

    return Perturbation("jitter", {"brightness": brightness, "contrast": contrast, "saturation": saturation}, fn)


def blur_jitter(
    sigma: float = 1.0, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2
) -> Perturbation:
    """Colour jitter followed by Gaussian blur."""
    parts = (colour_jitter(brightness, contrast, saturation), gaussian_blur(sigma))
    return compose(
        "blur_jitter", parts, {"sigma": sigma, "brightness": brightness, "contrast": contrast, "saturation": saturation}
    )


def downscale(scale: float = 0.5) -> Perturbation:
    """Downscale by ``scale`` and back up (bicubic): destroys high-frequency traces."""

    def fn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        width, height = image.size
        small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC)
        return small.resize((width, height), Image.Resampling.BICUBIC)

    return Perturbation("downscale", {"scale": scale}, fn)


def gaussian_noise(std: float = 0.02) -> Perturbation:
    """Additive Gaussian noise with ``std`` in [0, 1] intensity units."""

    def fn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = np.clip(array + rng.normal(0.0, std, array.shape), 0.0, 1.0)
        return Image.fromarray((array * 255.0 + 0.5).astype(np.uint8))

    return Perturbation("noise", {"std": std}, fn)


def compose(name: str, parts: Sequence[Perturbation], params: Mapping[str, Any]) -> Perturbation:
    def fn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        for part in parts:
            if part.fn is not None:
                image = part.fn(image, rng)
        return image

    return Perturbation(name, dict(params), fn)


def make_perturbation(text: str | None, registry: Registry | None = None) -> Perturbation:
    """Build a perturbation from its key (``"none"``, ``"blur:sigma=2"``...) via the registry."""
    if not text or text == "none":
        return IDENTITY
    from .registry import current_registry

    registry = registry or current_registry()
    name, params = parse_perturbation(text)
    spec = registry.perturbation(name)
    return spec.factory(**{**spec.params, **params})
