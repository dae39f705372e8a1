"""Dataset layouts: scanning, auto-detection, what each layout reads (counts, generators, splits, families),
fingerprints, warnings and errors. Trees are built in tmp_path with a handful of 8 px images."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dfzoo
from dfzoo.data.layouts import DatasetError, open_dataset, scan_images
from dfzoo.data.manifest import ManifestError
from dfzoo.data.sample import FAKE, REAL, REAL_POOL
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, UnknownNameError
from tests.synthetic import smooth_image

_rng = np.random.default_rng(0)


def write_images(folder: Path, count: int, prefix: str = "", ext: str = "png", size: int = 8) -> list[Path]:
    """``count`` small distinct images in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:03d}.{ext}"
        Image.fromarray(smooth_image(_rng, size)).save(path)
        paths.append(path)
    return paths


def counts(index: dfzoo.DatasetIndex) -> dict[tuple[str, str, int], int]:
    out: dict[tuple[str, str, int], int] = {}
    for s in index.samples:
        key = (s.split, s.generator, s.label)
        out[key] = out.get(key, 0) + 1
    return out


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


# -- manifests ------------------------------------------------------------------------------------------


def _manifest_tree(tmp_path: Path) -> list[Path]:
    return write_images(tmp_path / "imgs", 4)


def test_csv_manifest(tmp_path: Path, registry: Registry) -> None:
    _manifest_tree(tmp_path)
    (tmp_path / "m.csv").write_text(
        "path,label,generator,family,split\n"
        "imgs/000.png,0,,,train\n"
        "imgs/001.png,REAL,gan_x,,Test\n"
        "imgs/002.png,Fake,gan_x,gan,test\n"
        f"{(tmp_path / 'imgs' / '003.png').as_posix()},1,sd15,,validation\n"
    )
    index = open_dataset(tmp_path / "m.csv", registry=registry)
    assert index.layout == "manifest" and index.name == "m" and index.root == tmp_path.absolute()
    assert [(s.path.name, s.label, s.generator, s.family, s.split) for s in index.samples] == [
        ("000.png", 0, REAL_POOL, "real", "train"),
        ("001.png", 0, "gan_x", "real", "test"),
        ("002.png", 1, "gan_x", "gan", "test"),
        ("003.png", 1, "sd15", "diffusion", "val"),
    ]
    assert index.families == {"gan_x": "gan", "real": "real", "sd15": "diffusion"}


def test_jsonl_manifest_and_missing_files(tmp_path: Path, registry: Registry) -> None:
    _manifest_tree(tmp_path)
    rows = [
        {"path": "imgs/000.png", "label": 0, "generator": "g"},
        {"path": "imgs/001.png", "label": "fake", "generator": "g", "family": "gan"},
        {"path": "imgs/gone.png", "label": 1, "generator": "g"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    index = open_dataset(tmp_path / "m.jsonl", registry=registry)
    assert [(s.label, s.generator) for s in index.samples] == [(0, "g"), (1, "g")]
    assert index.skipped == [(str(tmp_path.absolute() / "imgs" / "gone.png"), "listed on line 3 but missing")]
    assert any("missing" in w for w in index.metadata["warnings"])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("path,label,generator\nimgs/000.png,0,g\nimgs/001.png,maybe,g\n", 3, "label 'maybe'"),
        ("path,label,generator\nimgs/000.png,1,\n", 2, "needs a generator"),
        ("path,label,generator\n,1,g\n", 2, "empty path"),
        ("path,label\nimgs/000.png,1\n", 1, "lacks column(s) generator"),
        ("path,label,generator\nimgs/000.png,1,g,extra\n", 2, "4 fields"),
        ("path,label,generator\nimgs/000.png,1,g\nimgs/000.png,0,g\n", 3, "already listed on line 2"),
        ("path,label,generator,family\nimgs/000.png,1,g,gan\nimgs/001.png,1,g,diffusion\n", 3, "family"),
    ],
)
def test_bad_csv_rows_name_their_line(tmp_path: Path, registry: Registry, text: str, line: int, message: str) -> None:
    _manifest_tree(tmp_path)
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ManifestError) as caught:
        open_dataset(tmp_path / "bad.csv", registry=registry)
    assert caught.value.line == line
    assert f"line {line}" in str(caught.value) and message in str(caught.value)


def test_bad_jsonl_line(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "bad.jsonl").write_text('{"path": "a.png", "label": 0, "generator": ""}\n{"path": oops}\n')
    with pytest.raises(ManifestError, match="line 2: invalid JSON"):
        open_dataset(tmp_path / "bad.jsonl", registry=registry)


# -- fingerprints ---------------------------------------------------------------------------------------


def test_fingerprint_is_stable_across_roots_and_tracks_changes(tmp_path: Path, registry: Registry) -> None:
    first = tmp_path / "one" / "data"
    for gen in ("gan_a", "gan_b"):
        write_images(first / gen / "0_real", 2)
        write_images(first / gen / "1_fake", 2)
    second = tmp_path / "elsewhere" / "data"
    shutil.copytree(first, second)
    a = open_dataset(first, registry=registry).fingerprint()
    assert a == open_dataset(first, registry=registry).fingerprint()
    assert a == open_dataset(second, registry=registry).fingerprint()

    changed = second / "gan_b" / "1_fake" / "001.png"
    before = changed.stat().st_size
    Image.fromarray(np.full((16, 16, 3), 7, dtype=np.uint8)).save(changed)
    assert changed.stat().st_size != before
    assert open_dataset(second, registry=registry).fingerprint() != a

    shutil.rmtree(second)
    shutil.copytree(first, second)
    (second / "gan_b" / "1_fake" / "001.png").rename(second / "gan_b" / "0_real" / "moved.png")
    assert open_dataset(second, registry=registry).fingerprint() != a


def test_fingerprint_mixes_in_a_stated_pixel_checksum(tmp_path: Path, registry: Registry) -> None:
    """Two builds with the same files and sizes but other pixels (the zoo on another CPU) never share one."""
    write_images(tmp_path / "gan_a" / "0_real", 2)
    write_images(tmp_path / "gan_a" / "1_fake", 2)
    index = open_dataset(tmp_path, registry=registry)
    plain = index.fingerprint()
    index.metadata["content_sha256"] = "a" * 64
    first = index.fingerprint()
    index.metadata["content_sha256"] = "b" * 64
    assert len({plain, first, index.fingerprint()}) == 3


# -- opening and errors ---------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(tmp_path / "absent", registry=registry)


def test_empty_folder(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "gan_a" / "0_real").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(DatasetError, match="holds no image files"):
        open_dataset(tmp_path, registry=registry)


def test_empty_folder_with_explicit_layout(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(DatasetError, match="holds no image files"):
        open_dataset(tmp_path, layout="cifake", registry=registry)


def test_unknown_layout_suggests_close_names(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "REAL", 1)
    with pytest.raises(UnknownNameError, match="did you mean genimage"):
        open_dataset(tmp_path, layout="genimag", registry=registry)


def test_explicit_layout_that_finds_nothing(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "g" / "0_real", 1)
    write_images(tmp_path / "g" / "1_fake", 1)
    with pytest.raises(DatasetError) as caught:
        open_dataset(tmp_path, layout="genimage", registry=registry)
    assert "layout 'genimage' found no labelled images" in str(caught.value)
    assert "{nature,ai}" in str(caught.value)


def test_unknown_params_are_named(tmp_path: Path, registry: Registry) -> None:
    write_images(tmp_path / "REAL", 1)
    write_images(tmp_path / "FAKE", 1)
    with pytest.raises(DatasetError, match=r"no parameter.*genrator.*generator"):
        open_dataset(tmp_path, registry=registry, genrator="x")


def test_layout_name_given_as_source(registry: Registry) -> None:
    with pytest.raises(FileNotFoundError, match="is a layout"):
        open_dataset("cifake", registry=registry)


class _NamedAndCustomLayouts:
    """A test plugin: a named dataset that knows its own root, a high-priority layout and a broken detector."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple] = []

    @dfzoo.hookimpl
    def dfzoo_datasets(self):
        from dfzoo.data.layouts import load_cifake

        def load_named(root, **params):
            self.calls.append((root, params))
            return load_cifake(self.root, generator=params.get("generator", "sd14"))

        def broken(path):
            raise RuntimeError("cannot look")

        yield dfzoo.DatasetSpec(name="mini", summary="a named test dataset", load=load_named, needs_root=False)
        yield dfzoo.DatasetSpec(
            name="flat",
            summary="any folder of images, all fake",
            priority=100,
            load=self._load_flat,
            detect=lambda p: (Path(p) / "FLAT").exists(),
        )
        yield dfzoo.DatasetSpec(
            name="broken", summary="a layout whose detector raises", priority=50, load=self._load_flat, detect=broken
        )

    def _load_flat(self, root):
        return dfzoo.DatasetIndex(
            name="flat",
            layout="flat",
            root=root,
            samples=[dfzoo.Sample(path=p, label=FAKE, generator="g") for p in scan_images(root)],
        )


def test_named_dataset_and_third_party_layouts(tmp_path: Path) -> None:
    write_images(tmp_path / "c" / "REAL", 1)
    write_images(tmp_path / "c" / "FAKE", 1)
    plugin = _NamedAndCustomLayouts(tmp_path / "c")
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(plugin,)))

    index = dfzoo.load_dataset("mini", registry=registry, generator="sdx")
    assert plugin.calls == [(None, {"generator": "sdx"})]
    assert index.generators() == ["sdx"] and index.metadata["warnings"] == []

    assert open_dataset(tmp_path / "c", registry=registry).layout == "cifake"  # the broken detector is skipped
    (tmp_path / "c" / "FLAT").write_text("")
    assert open_dataset(tmp_path / "c", registry=registry).layout == "flat"  # higher priority wins

    write_images(tmp_path / "odd", 1)
    with pytest.raises(DatasetError, match=r"broken: .*its detector failed: RuntimeError: cannot look"):
        open_dataset(tmp_path / "odd", registry=registry)


LAYOUTS = ("forensynths", "binary", "genimage", "cifake", "manifest")


@pytest.mark.parametrize("kind", LAYOUTS)
def test_each_layout_is_detected(tmp_path: Path, registry: Registry, kind: str) -> None:
    source: Path = tmp_path
    if kind == "forensynths":
        write_images(tmp_path / "g" / "0_real", 1)
        write_images(tmp_path / "g" / "1_fake", 1)
    elif kind == "binary":
        write_images(tmp_path / "real", 1)
        write_images(tmp_path / "fake", 1)
    elif kind == "genimage":
        write_images(tmp_path / "g" / "val" / "nature", 1)
        write_images(tmp_path / "g" / "val" / "ai", 1)
    elif kind == "cifake":
        write_images(tmp_path / "test" / "REAL", 1)
        write_images(tmp_path / "test" / "FAKE", 1)
    else:
        write_images(tmp_path, 2)
        source = tmp_path / "list.csv"
        source.write_text("path,label,generator\n000.png,real,\n001.png,fake,g\n")
    detected = [name for name in LAYOUTS if registry.dataset(name).detect(source)]
    assert detected == [kind]
    index = open_dataset(source, registry=registry)
    assert index.layout == kind and len(index.samples) == 2
    assert sorted(s.label for s in index.samples) == [REAL, FAKE]


def test_loading_restores_the_garbage_collector(tmp_path: Path) -> None:
    import gc

    from dfzoo.data.layouts import load_cifake

    write_images(tmp_path / "REAL", 1)
    assert gc.isenabled()
    load_cifake(tmp_path)
    scan_images(tmp_path)
    assert gc.isenabled()
    gc.disable()
    try:
        load_cifake(tmp_path)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_loader_that_shows_progress_is_told_the_callers_setting():
    from dfzoo.benchmark.protocol import parse_protocol
    from dfzoo.benchmark.protocol_datasets import open_protocol_dataset

    calls = []

    def load_slow(root, size: int = 2, progress: bool = True):
        """A named dataset whose build shows progress."""
        calls.append((size, progress))
        return dfzoo.DatasetIndex(name="slow", layout="slow", root=None, samples=[])

    class SlowPlugin:
        @dfzoo.hookimpl
        def dfzoo_datasets(self):
            yield dfzoo.DatasetSpec(name="slow", load=load_slow, needs_root=False)

    registry = Registry(get_plugin_manager(builtins=False, autoload=False, extra_plugins=(SlowPlugin(),)))
    assert registry.dataset("slow").params == {"size": 2}  # progress is the caller's, not a dataset parameter
    open_dataset("slow", registry=registry, progress=False, size=3)
    open_dataset("slow", registry=registry)
    protocol = parse_protocol({"name": "p", "dataset": "slow", "detectors": [{"name": "x"}]})
    open_protocol_dataset(protocol, registry, progress=False)
    assert calls == [(3, False), (2, True), (2, False)]
