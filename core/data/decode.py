"""Safe image decoding: any odd mode becomes 8-bit RGB, and anything unreadable raises one clear error."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 64_000_000  # about 8000 x 8000; override with $DFZOO_MAX_IMAGE_PIXELS


class ImageDecodeError(Exception):
    """An image that cannot be used; ``reason`` is short and meant for reports."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def max_pixels() -> int:
    """The largest image (width x height) decoded; ``$DFZOO_MAX_IMAGE_PIXELS`` overrides the default."""
    raw = os.environ.get("DFZOO_MAX_IMAGE_PIXELS", "")
    if not raw.strip():
        return DEFAULT_MAX_PIXELS
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"DFZOO_MAX_IMAGE_PIXELS={raw!r} is not a whole number of pixels") from None


def load_image(source: str | Path | bytes | Image.Image | None) -> Image.Image:
    """Decode ``source`` to an 8-bit RGB image with EXIF orientation applied.

    Handles palette, RGBA/LA (alpha dropped), greyscale, 1-bit, CMYK, 16-bit and float images. Raises
    :class:`ImageDecodeError` for empty, truncated, corrupt, non-image or over-large (decompression bomb)
    input.
    """
    if source is None:
        raise TypeError(
            "load_image(None): no file path. The harness hands detectors images, not files: read "
            "pixels with sample.load() (a detector that must read files declares reads_files=True)"
        )
    label = (
        "<bytes>" if isinstance(source, bytes) else str(source) if not isinstance(source, Image.Image) else "<image>"
    )
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    limit = max_pixels()
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageDecodeError(label, "empty file")
            readable: str | Path | io.BytesIO = io.BytesIO(source)
        else:
            if os.path.getsize(source) == 0:
                raise ImageDecodeError(label, "empty file")
            readable = source  # Pillow opens the file and closes it when the with block ends
        # no warnings.catch_warnings() here: it swaps process-wide state and load_image runs in threads.
        # Pillow's DecompressionBombWarning (over 89M pixels) only fires above dfzoo's default limit.
        with Image.open(readable) as image:
            width, height = image.size
            if width * height > limit:
                raise ImageDecodeError(
                    label, f"too large ({width}x{height} > {limit} pixels; set DFZOO_MAX_IMAGE_PIXELS to allow)"
                )
            image.load()
            return _to_rgb(_exif_transpose(image))
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(label, f"decompression bomb: {error}") from error
    except FileNotFoundError as error:
        raise ImageDecodeError(label, "file not found") from error
    except Image.UnidentifiedImageError as error:
        raise ImageDecodeError(label, "not an image (unidentified format)") from error
    except (OSError, SyntaxError, ValueError) as error:
        message = str(error)
        reason = "truncated image" if "truncated" in message.lower() else f"corrupt image ({message})"
        raise ImageDecodeError(label, reason) from error
    except Exception as error:  # a decoder plugin failing in its own way is still just a bad file here
        raise ImageDecodeError(label, f"corrupt image ({type(error).__name__}: {error})") from error


def _exif_transpose(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; malformed EXIF leaves the pixels as stored rather than losing the image."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy() if image.readonly else image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(image, dtype=np.float64)), mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        return image.convert("RGB")
    return image.convert("RGB")


def _float_to_uint8(array: np.ndarray) -> np.ndarray:
    """Float pixels to 0..255: values in [0, 1] are scaled by 255, values in [0, 255] kept, any other range
    stretched min..max; NaN and infinities become 0."""
    finite = np.isfinite(array)
    if not finite.any():
        return np.zeros(array.shape, dtype=np.uint8)
    low, high = float(array[finite].min()), float(array[finite].max())
    if low >= 0.0 and high <= 1.0:
        scaled = array * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = array
    elif high > low:
        scaled = (array - low) * (255.0 / (high - low))
    else:  # a constant outside 0..255: as near as 8 bits get
        scaled = np.full(array.shape, min(max(low, 0.0), 255.0))
    scaled = np.where(finite, scaled, 0.0)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
