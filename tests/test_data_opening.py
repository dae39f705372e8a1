"""Opening datasets: manifests, fingerprints, errors for missing, empty or unknown sources, named datasets and
third-party layouts, layout detection, and what a loader is told (progress). Trees are built in tmp_path."""

from __future__ import annotations

import json
import shutil
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
from tests.kit import SpecPlugin, write_images

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

    slow = SpecPlugin(datasets=[dfzoo.DatasetSpec(name="slow", load=load_slow, needs_root=False)])
    registry = Registry(get_plugin_manager(builtins=False, autoload=False, extra_plugins=(slow,)))
    assert registry.dataset("slow").params == {"size": 2}  # progress is the caller's, not a dataset parameter
    open_dataset("slow", registry=registry, progress=False, size=3)
    open_dataset("slow", registry=registry)
    protocol = parse_protocol({"name": "p", "dataset": "slow", "detectors": [{"name": "x"}]})
    open_protocol_dataset(protocol, registry, progress=False)
    assert calls == [(3, False), (2, True), (2, False)]
