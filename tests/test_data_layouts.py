"""Dataset layouts: scanning, and what each layout (ForenSynths, binary, GenImage, CIFAKE) reads: counts,
generators, splits, families, warnings. Trees are built in tmp_path with a handful of 8 px images."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

import dfzoo
from dfzoo.data.layouts import DatasetError, open_dataset, scan_images
from dfzoo.data.sample import FAKE, REAL, REAL_POOL
from dfzoo.registry import Registry
from tests.kit import counts, write_images

# -- scanning -------------------------------------------------------------------------------------------


def test_scan_images_finds_images_by_extension_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for name in [
        "b/x.PNG",
        "a/y.jpeg",
        "a/z.JpG",
        "a-b/w.webp",
        "c.bmp",
        "d.tif",
        "e.TIFF",
        "f.gif",
        "deep/er/still/g.jpg",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    for name in ["notes.txt", "png", "archive.png.zip", ".hidden.png", ".cache/inside.png", "a/.DS_Store"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.png").mkdir()  # a folder with an image-like name is not an image
    found = scan_images(tmp_path)
    assert found == sorted(found)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/y.jpeg",
        "a/z.JpG",
        "a-b/w.webp",
        "b/x.PNG",
        "c.bmp",
        "d.tif",
        "deep/er/still/g.jpg",
        "e.TIFF",
        "f.gif",
    ]
    assert all(p.is_absolute() == tmp_path.is_absolute() for p in found)


def test_scan_images_survives_a_symlink_loop(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 2)
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    assert len(scan_images(tmp_path)) == 2


def test_samples_from_uses_the_scanner(tmp_path: Path) -> None:
    write_images(tmp_path / "x", 3)
    samples = dfzoo.samples_from(tmp_path)
    assert [s.label for s in samples] == [-1, -1, -1]
    assert [s.path for s in samples] == scan_images(tmp_path)


# -- ForenSynths ----------------------------------------------------------------------------------------


def test_forensynths_flat(tmp_path: Path, registry: Registry) -> None:
    for gen in ("gan_a", "gan_b"):
        write_images(tmp_path / gen / "0_real", 3)
        write_images(tmp_path / gen / "1_fake", 2)
    index = open_dataset(tmp_path, registry=registry)
    assert index.layout == "forensynths"
    assert index.root == tmp_path.absolute()
    assert counts(index) == {
        ("", "gan_a", REAL): 3,
        ("", "gan_a", FAKE): 2,
        ("", "gan_b", REAL): 3,
        ("", "gan_b", FAKE): 2,
    }
    assert index.generators() == ["gan_a", "gan_b"]
    assert index.families == {}  # unknown names stay unknown
    assert {s.family for s in index.samples if s.label == REAL} == {"real"}
    assert {s.family for s in index.samples if s.label == FAKE} == {""}
    assert index.metadata["warnings"] == [] and index.skipped == []


def test_forensynths_split_and_class_levels_with_families(tmp_path: Path, registry: Registry) -> None:
    for split, gen, cls in [
        ("train", "progan", "car"),
        ("train", "progan", "cat"),
        ("test", "progan", "car"),
        ("test", "my_gan", None),
        ("val", "my_gan", None),
    ]:
        base = tmp_path / split / gen / (cls or "")
        write_images(base / "0_real", 2)
        write_images(base / "1_fake", 1)
    index = open_dataset(tmp_path, registry=registry, families={"my_gan": "gan"})
    assert index.layout == "forensynths"
    assert counts(index) == {
        ("train", "progan", REAL): 4,
        ("train", "progan", FAKE): 2,
        ("test", "progan", REAL): 2,
        ("test", "progan", FAKE): 1,
        ("test", "my_gan", REAL): 2,
        ("test", "my_gan", FAKE): 1,
        ("val", "my_gan", REAL): 2,
        ("val", "my_gan", FAKE): 1,
    }
    assert index.families == {"my_gan": "gan", "progan": "gan"}  # progan is a well-known name
    assert {s.family for s in index.samples if s.label == FAKE} == {"gan"}


def test_forensynths_label_folders_match_any_case(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "g" / "0_Real", 2)
    write_images(tmp_path / "g" / "1_FAKE", 3)
    index = open_dataset(tmp_path, registry=registry)
    assert counts(index) == {("", "g", REAL): 2, ("", "g", FAKE): 3}


def test_a_root_holding_0_real_and_1_fake_is_the_binary_layout(tmp_path: Path, registry: Registry) -> None:
    root = tmp_path / "stylegan2"
    write_images(root / "0_real", 1)
    write_images(root / "1_fake", 1)
    index = open_dataset(root, registry=registry)
    assert index.layout == "binary"
    assert index.generators() == ["stylegan2"] and index.families == {"real": "real", "stylegan2": "gan"}
    forced = open_dataset(root, layout="forensynths", registry=registry)  # the old reading, when asked for
    assert forced.generators() == ["stylegan2"] and {s.generator for s in forced.samples} == {"stylegan2"}


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("plain", {("", REAL_POOL, REAL): 2, ("", "mydata", FAKE): 3}),
        (
            "split",
            {
                ("train", REAL_POOL, REAL): 2,
                ("train", "mydata", FAKE): 3,
                ("test", REAL_POOL, REAL): 2,
                ("test", "mydata", FAKE): 3,
            },
        ),
        ("numbered", {("", REAL_POOL, REAL): 2, ("", "mydata", FAKE): 3}),
    ],
)
def test_binary_real_fake_folders(tmp_path: Path, registry: Registry, shape: str, expected: dict) -> None:
    """A plain real/ + fake/ folder is not CIFAKE: its fakes are named after the folder, and that is said."""
    root = tmp_path / "mydata"
    real, fake = ("0_real", "1_fake") if shape == "numbered" else ("real", "Fake")
    for base in [root / "train", root / "test"] if shape == "split" else [root]:
        write_images(base / real, 2)
        write_images(base / fake, 3)
    index = open_dataset(root, registry=registry)
    assert index.layout == "binary" and counts(index) == expected
    assert "named 'mydata' after the folder" in index.metadata["assumed"][0]
    named = open_dataset(root, registry=registry, generator="sdxl", family="diffusion")
    assert named.generators() == ["sdxl"] and named.families["sdxl"] == "diffusion" and not named.metadata["assumed"]


def test_binary_folder_named_like_a_split_calls_its_fakes_fake(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "test" / "real", 1)
    write_images(tmp_path / "test" / "fake", 1)
    assert open_dataset(tmp_path / "test", registry=registry).generators() == ["fake"]


def test_forensynths_generator_param_makes_first_level_classes(tmp_path: Path, registry: Registry) -> None:
    for cls in ("airplane", "bird"):
        write_images(tmp_path / cls / "0_real", 1)
        write_images(tmp_path / cls / "1_fake", 1)
    index = open_dataset(tmp_path, layout="forensynths", registry=registry, generator="progan")
    assert counts(index) == {("", "progan", REAL): 2, ("", "progan", FAKE): 2}


def test_forensynths_records_what_it_cannot_use(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "gan_a" / "0_real", 2)
    write_images(tmp_path / "gan_a" / "1_fake", 2)
    write_images(tmp_path / "gan_b" / "0_real", 2)  # no fakes: one class only
    (tmp_path / "gan_b" / "1_fake").mkdir()  # should hold images but is empty
    write_images(tmp_path / "gan_b" / "fakes", 1)  # mislabelled folder: images outside 0_real/1_fake
    (tmp_path / "gan_a" / "0_real" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "README").write_text("about")
    index = open_dataset(tmp_path, registry=registry)
    assert counts(index) == {("", "gan_a", REAL): 2, ("", "gan_a", FAKE): 2, ("", "gan_b", REAL): 2}
    warnings = index.metadata["warnings"]
    assert "gan_b/1_fake: folder holds no images" in warnings
    assert any("'gan_b'" in w and "no fake" in w for w in warnings)
    assert len(warnings) == 2
    reasons = {Path(p).relative_to(tmp_path).as_posix(): r for p, r in index.skipped}
    assert reasons == {
        "README": "not an image (file without extension)",
        "gan_a/0_real/Thumbs.db": "not an image (.db file)",
        "gan_b/fakes/000.png": "image outside any 0_real/1_fake folder",
    }


# -- GenImage -------------------------------------------------------------------------------------------


def test_genimage(tmp_path: Path, registry: Registry) -> None:
    for gen, sub in (("ADM", "imagenet_ai_0508_adm"), ("BigGAN", None), ("mystery", None)):
        base = tmp_path / gen / (sub or "")
        for split, n in (("train", 2), ("val", 1)):
            write_images(base / split / "nature", n, ext="JPEG")
            write_images(base / split / "ai", n)
    index = open_dataset(tmp_path, registry=registry)
    assert index.layout == "genimage"
    assert {s.split for s in index.samples} == {"train", "val"}
    expected = {}
    for gen in ("ADM", "BigGAN", "mystery"):
        expected.update(
            {("train", gen, REAL): 2, ("train", gen, FAKE): 2, ("val", gen, REAL): 1, ("val", gen, FAKE): 1}
        )
    assert counts(index) == expected
    assert index.families == {"ADM": "diffusion", "BigGAN": "gan"}


def test_genimage_label_names_any_case(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "glide" / "Train" / "Nature", 1)
    write_images(tmp_path / "glide" / "Train" / "AI", 1)
    index = open_dataset(tmp_path, registry=registry)
    assert index.layout == "genimage"
    assert counts(index) == {("train", "glide", REAL): 1, ("train", "glide", FAKE): 1}


# -- CIFAKE ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["split", "plain", "one_level_down"])
def test_cifake_shapes(tmp_path: Path, registry: Registry, shape: str) -> None:
    if shape == "split":
        for split in ("train", "test"):
            write_images(tmp_path / split / "REAL", 2)
            write_images(tmp_path / split / "FAKE", 1)
        expected = {
            ("train", REAL_POOL, REAL): 2,
            ("train", "sd14", FAKE): 1,
            ("test", REAL_POOL, REAL): 2,
            ("test", "sd14", FAKE): 1,
        }
    else:
        base = tmp_path / "cifake" if shape == "one_level_down" else tmp_path
        write_images(base / "REAL", 2, ext="jpg")
        write_images(base / "FAKE", 3, ext="jpg")
        expected = {("", REAL_POOL, REAL): 2, ("", "sd14", FAKE): 3}
    index = open_dataset(tmp_path, registry=registry)
    assert index.layout == "cifake"
    assert counts(index) == expected
    assert index.families == {"real": "real", "sd14": "diffusion"}
    assert {s.family for s in index.samples if s.label == REAL} == {"real"}
    assert "CIFAKE's ('sd14'" in index.metadata["assumed"][0]  # an assumption, said


def test_lower_case_real_fake_is_cifake_only_when_asked(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "real", 1)
    write_images(tmp_path / "fake", 1)
    assert open_dataset(tmp_path, registry=registry).layout == "binary"
    assert open_dataset(tmp_path, layout="cifake", registry=registry).generators() == ["sd14"]


def test_cifake_generator_param(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "REAL", 1)
    write_images(tmp_path / "FAKE", 1)
    index = open_dataset(tmp_path, registry=registry, generator="stylegan_x", family="gan")
    assert index.generators() == ["stylegan_x"] and index.families["stylegan_x"] == "gan"


def test_cifake_not_detected_for_several_real_fake_folders(tmp_path: Path, registry: Registry) -> None:
    """Two generators with plain real/fake folders must not be merged into one CIFAKE generator."""
    for gen in ("gan_a", "gan_b"):
        write_images(tmp_path / gen / "real", 1)
        write_images(tmp_path / gen / "fake", 1)
    with pytest.raises(DatasetError) as caught:
        open_dataset(tmp_path, registry=registry)
    message = str(caught.value)
    assert "no dataset layout recognises" in message
    for name in ("forensynths", "genimage", "cifake", "manifest"):
        assert f"  {name}: " in message
    assert "0_real" in message and "nature" in message and "REAL" in message


def test_cifake_real_files(tmp_path: Path, registry: Registry, shared_dir: Path) -> None:
    """The real CIFAKE archive: extract ~20 images of each class (names have spaces and parentheses)."""
    wanted = {"REAL": 20, "FAKE": 20}
    with tarfile.open(shared_dir / "datasets" / "cifake-train.tar.gz", "r|gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or wanted.get(parts[1], 0) <= 0:
                continue
            wanted[parts[1]] -= 1
            target = tmp_path.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
            if not any(wanted.values()):
                break
    index = open_dataset(tmp_path, registry=registry)
    assert index.layout == "cifake" and index.name == tmp_path.name
    assert counts(index) == {("", REAL_POOL, REAL): 20, ("", "sd14", FAKE): 20}
    assert any(" (" in s.path.name for s in index.samples)
    from dfzoo.data.decode import load_image

    assert {load_image(s.path).size for s in index.samples} == {(32, 32)}
