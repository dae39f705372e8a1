"""Safe decoding: a corpus of broken and odd images, generated here, each either becomes 8-bit RGB or raises
ImageDecodeError with a reason a report can show."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfzoo.data.decode import ImageDecodeError, load_image


def _noise(size: tuple[int, int] = (16, 16), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (the classic decompression bomb shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def _rgb(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    array = np.asarray(image)
    assert array.dtype == np.uint8 and array.shape[2] == 3
    return array


# -- unusable files ---------------------------------------------------------------------------------------

BAD = {
    "random_bytes.jpg": (
        lambda: np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes(),
        "not an image",
    ),
    "truncated.jpg": (lambda: _encoded(_noise(), "JPEG", quality=95)[:300], "truncated"),
    "truncated.png": (lambda: _encoded(_noise(), "PNG")[:200], "truncated"),
    "empty.jpg": (lambda: b"", "empty file"),
    "notes.png": (lambda: b"these are my notes, not a picture\n" * 4, "not an image"),
    "bomb.png": (lambda: _png_claiming(9_000, 9_000), "too large"),  # over dfzoo's limit, under Pillow's
    "huge_bomb.png": (lambda: _png_claiming(100_000, 100_000), "decompression bomb"),  # over Pillow's
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_raises_with_reason(tmp_path: Path, name: str) -> None:
    make, expected = BAD[name]
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(ImageDecodeError) as caught:
        load_image(path)
    assert expected in caught.value.reason
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_bytes_raise_the_same_way(name: str) -> None:
    make, expected = BAD[name]
    with pytest.raises(ImageDecodeError) as caught:
        load_image(make())
    assert expected in caught.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="file not found"):
        load_image(tmp_path / "absent.png")


def test_pixel_limit_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.png"
    _noise((16, 16)).save(path)
    assert load_image(path).size == (16, 16)
    monkeypatch.setenv("DFZOO_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ImageDecodeError) as caught:
        load_image(path)
    assert "too large" in caught.value.reason and "16x16" in caught.value.reason


def test_bad_pixel_limit_setting_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.png"
    _noise().save(path)
    monkeypatch.setenv("DFZOO_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="DFZOO_MAX_IMAGE_PIXELS"):
        load_image(path)


# -- odd but valid images ---------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (16, 8), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 4, 8))  # blue stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as raw:
        assert raw.size == (16, 8)
    decoded = _rgb(load_image(path))
    assert decoded.shape[:2] == (16, 8)  # height 16, width 8: swapped
    # clockwise rotation puts the left edge at the top
    assert decoded[1, 4, 2] > 200 and decoded[1, 4, 0] < 60
    assert decoded[14, 4, 0] > 200 and decoded[14, 4, 2] < 60


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    image.paste(1, (0, 0, 4, 8))
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    with Image.open(path) as raw:
        assert raw.mode == "P" and "transparency" in raw.info
    decoded = _rgb(load_image(path))
    assert tuple(decoded[0, 0]) == (200, 100, 50)
    assert tuple(decoded[0, 7]) == (10, 20, 30)  # transparent pixels keep their colour, alpha dropped


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("RGBA", (200, 10, 20, 0), (200, 10, 20)),
        ("LA", (90, 128), (90, 90, 90)),
        ("L", 77, (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
    ],
)
def test_modes_become_rgb(tmp_path: Path, mode: str, value, expected) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (8, 8), value).save(path)
    with Image.open(path) as raw:
        assert raw.mode == mode
    decoded = _rgb(load_image(path))
    assert decoded.shape == (8, 8, 3)
    assert tuple(decoded[3, 3]) == expected


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    pixel = _rgb(load_image(path))[4, 4].astype(int)
    assert pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 16384, 32768, 65535]] * 4, dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    decoded = _rgb(load_image(path))[0, :, 0].astype(int)
    assert decoded.tolist() == [0, 64, 128, 255]


def test_sixteen_bit_png_with_small_values_stays_dark(tmp_path: Path) -> None:
    """A dark 16-bit image must stay dark: values are divided by 65535 even when all are below 256."""
    values = np.full((4, 4), 200, dtype=np.uint16)
    path = tmp_path / "dark16.png"
    Image.fromarray(values).save(path)
    assert _rgb(load_image(path)).max() <= 1


def test_float_tiff(tmp_path: Path) -> None:
    values = np.tile(np.linspace(0.0, 1.0, 5, dtype=np.float32), (4, 1))
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    with Image.open(path) as raw:
        assert raw.mode == "F"
    decoded = _rgb(load_image(path))[0, :, 0].astype(int)
    assert decoded.tolist() == [0, 64, 128, 191, 255]


def test_constant_float_image_keeps_its_level(tmp_path: Path) -> None:
    path = tmp_path / "grey.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F").save(path)
    assert _rgb(load_image(path))[0, 0, 0] == 128


def test_float_with_nan_and_wide_range(tmp_path: Path) -> None:
    values = np.array([[np.nan, -1000.0, 0.0, 1000.0]], dtype=np.float32)
    path = tmp_path / "wide.tif"
    Image.fromarray(values, mode="F").save(path)
    decoded = _rgb(load_image(path))[0, :, 0].astype(int)
    assert decoded.tolist()[1:] == [0, 128, 255]
    assert 0 <= decoded[0] <= 255


def test_in_memory_image_and_bytes() -> None:
    image = Image.new("LA", (4, 4), (10, 255))
    assert _rgb(load_image(image))[0, 0].tolist() == [10, 10, 10]
    data = _encoded(_noise((8, 4)), "WEBP", lossless=True)
    assert load_image(data).size == (8, 4)


def test_bad_exif_does_not_lose_the_image(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 99  # not a valid orientation
    path = tmp_path / "odd_exif.jpg"
    _noise((8, 8)).save(path, exif=exif.tobytes())
    assert load_image(path).size == (8, 8)


def test_constant_float_outside_range(tmp_path: Path) -> None:
    path = tmp_path / "bright.tif"
    Image.fromarray(np.full((4, 4), 4000.0, dtype=np.float32), mode="F").save(path)
    assert _rgb(load_image(path)).min() == 255
