"""Links are resolved once: no loop, no file indexed twice, the label of a file's first place kept, and every
path that was not used recorded with its reason. Trees are built in tmp_path; scanning never decodes, so the
files hold a few distinct bytes each."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from dfzoo.data.layouts import open_dataset, scan_images
from dfzoo.data.sample import FAKE, REAL
from dfzoo.data.scan import DUPLICATE_PATH, LINK_NOT_FOLLOWED, walk_folders
from dfzoo.registry import Registry


def files(folder: Path, count: int, prefix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{prefix}{i}.png" for i in range(count)]
    for path in paths:
        path.write_bytes(str(path).encode())
    return paths


def gan(root: Path, name: str = "ganA", reals: int = 3, fakes: int = 2) -> Path:
    files(root / name / "0_real", reals, "r")
    files(root / name / "1_fake", fakes, "f")
    return root / name


def label_counts(index) -> dict[tuple[str, int], int]:
    return dict(Counter((s.generator, s.label) for s in index.samples))


def reasons(index) -> dict[str, str]:
    return {Path(path).relative_to(index.root).as_posix(): reason for path, reason in index.skipped}


def test_a_link_to_its_own_folder_counts_nothing_twice(tmp_path: Path, registry: Registry) -> None:
    os.symlink(".", gan(tmp_path) / "0_real" / "loop")
    index = open_dataset(tmp_path, registry=registry)
    assert label_counts(index) == {("ganA", REAL): 3, ("ganA", FAKE): 2}
    assert len({s.path.resolve() for s in index.samples}) == 5
    assert reasons(index)["ganA/0_real/loop"].startswith(f"{LINK_NOT_FOLLOWED}: it points to ")
    assert len(scan_images(tmp_path)) == 5


def test_a_link_to_an_ancestor_imports_no_fake_as_real(tmp_path: Path, registry: Registry) -> None:
    os.symlink("..", gan(tmp_path) / "0_real" / "more")
    gan(tmp_path, "ganB")
    index = open_dataset(tmp_path, registry=registry)
    assert label_counts(index) == {("ganA", REAL): 3, ("ganA", FAKE): 2, ("ganB", REAL): 3, ("ganB", FAKE): 2}
    assert all(s.path.parent.name == ("0_real" if s.label == REAL else "1_fake") for s in index.samples)
    assert LINK_NOT_FOLLOWED in reasons(index)["ganA/0_real/more"]


def test_a_link_to_the_dataset_root_or_above_is_a_loop(tmp_path: Path, registry: Registry) -> None:
    root = tmp_path / "data"
    gan(root)
    os.symlink(root, root / "ganA" / "1_fake" / "root")
    os.symlink(tmp_path, root / "ganA" / "1_fake" / "above")
    index = open_dataset(root, registry=registry)
    assert label_counts(index) == {("ganA", REAL): 3, ("ganA", FAKE): 2}
    assert {k for k, v in reasons(index).items() if v.startswith(LINK_NOT_FOLLOWED)} == {
        "ganA/1_fake/root",
        "ganA/1_fake/above",
    }


def test_a_link_to_a_folder_read_elsewhere_keeps_the_first_place_and_warns_on_labels(
    tmp_path: Path, registry: Registry
) -> None:
    """0_real/more -> ../1_fake: the fakes stay fake (real folders are read before links), once each."""
    os.symlink("../1_fake", gan(tmp_path) / "0_real" / "more")
    index = open_dataset(tmp_path, registry=registry)
    assert label_counts(index) == {("ganA", REAL): 3, ("ganA", FAKE): 2}
    skipped = reasons(index)
    assert skipped == {
        f"ganA/0_real/more/f{i}.png": f"{DUPLICATE_PATH}{tmp_path / 'ganA' / '1_fake' / f'f{i}.png'}" for i in range(2)
    }
    (conflict,) = [w for w in index.metadata["warnings"] if w.startswith("LABEL CONFLICT")]
    assert "2 file(s) are reached by two paths with different labels" in conflict
    assert "1_fake/f0.png (fake) is also" in conflict and "more/f0.png (real)" in conflict


def test_links_outside_the_root_are_followed_once(tmp_path: Path, registry: Registry) -> None:
    """Datasets assembled from links: a folder outside the root is read; a second link to it is not."""
    outside = tmp_path / "photos"
    files(outside, 4)
    os.symlink(outside, outside / "back")  # a loop inside the linked folder
    root = tmp_path / "data"
    files(root / "ganA" / "1_fake", 2)
    files(root / "ganB" / "1_fake", 2)
    os.symlink(outside, root / "ganA" / "0_real")
    os.symlink(outside, root / "ganB" / "0_real")
    os.symlink(root, outside / "dataset")  # from outside back into the dataset
    index = open_dataset(root, registry=registry)
    assert label_counts(index) == {("ganA", REAL): 4, ("ganA", FAKE): 2, ("ganB", FAKE): 2}
    assert {s.path.parent for s in index.samples if s.label == REAL} == {root / "ganA" / "0_real"}
    skipped = reasons(index)
    first_link = root / "ganA" / "0_real"
    assert skipped["ganB/0_real"] == f"{LINK_NOT_FOLLOWED}: {outside} is already read through {first_link}"
    assert skipped["ganA/0_real/back"].endswith("(a loop)")
    assert skipped["ganA/0_real/dataset"].endswith("(a loop)")
    assert "generator 'ganB' has 2 fake and no real images" in index.metadata["warnings"][0]


def test_a_link_gives_a_label_to_files_whose_own_place_has_none(tmp_path: Path, registry: Registry) -> None:
    """Reals kept in an unlabelled pool inside the root and linked in as ganA/0_real are indexed (once)."""
    files(tmp_path / "pool", 3)
    files(tmp_path / "ganA" / "1_fake", 2)
    os.symlink("../pool", tmp_path / "ganA" / "0_real")
    index = open_dataset(tmp_path, registry=registry)
    assert label_counts(index) == {("ganA", REAL): 3, ("ganA", FAKE): 2}
    skipped = reasons(index)
    assert skipped == {
        f"pool/{i}.png": f"{DUPLICATE_PATH}{tmp_path / 'ganA' / '0_real' / f'{i}.png'}" for i in range(3)
    }


def test_file_links_are_indexed_once_by_their_target(tmp_path: Path, registry: Registry) -> None:
    fakes = files(tmp_path / "ganA" / "1_fake", 2, "f")
    files(tmp_path / "ganA" / "0_real", 1, "r")
    outside = files(tmp_path.parent / f"{tmp_path.name}-extra", 1)[0]
    os.symlink(fakes[0], tmp_path / "ganA" / "0_real" / "alias.png")  # same file as a fake
    os.symlink(outside, tmp_path / "ganA" / "0_real" / "extra.png")  # a file outside the root
    os.symlink(tmp_path / "missing.png", tmp_path / "ganA" / "0_real" / "gone.png")
    index = open_dataset(tmp_path, registry=registry)
    by_name = {s.path.name: s.label for s in index.samples}
    assert by_name == {"r0.png": REAL, "extra.png": REAL, "f0.png": FAKE, "f1.png": FAKE}  # the real place wins
    skipped = reasons(index)
    assert skipped["ganA/0_real/alias.png"] == f"{DUPLICATE_PATH}{fakes[0]}"
    assert skipped["ganA/0_real/gone.png"] == "broken link"
    assert any(w.startswith("LABEL CONFLICT: 1 file(s)") for w in index.metadata["warnings"])
    found = scan_images(tmp_path)
    assert found == sorted(found)
    assert [p.name for p in found] == ["extra.png", "r0.png", "f0.png", "f1.png"]


def test_scan_images_keeps_name_order_with_links_and_files_between_folders(tmp_path: Path) -> None:
    files(tmp_path / "b", 1)
    files(tmp_path, 1, "c")
    files(tmp_path, 1, "a")
    os.symlink(tmp_path / "b", tmp_path / "bb")
    os.symlink(tmp_path / "b", tmp_path / "ba")
    files(tmp_path / "d" / "e", 1)
    os.symlink(tmp_path / "d", tmp_path / "d" / "e" / "up")
    found = scan_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a0.png", "b/0.png", "c0.png", "d/e/0.png"]


def test_walk_reads_real_folders_first_and_each_link_target_once(tmp_path: Path) -> None:
    files(tmp_path / "x" / "y", 1)
    os.symlink(tmp_path / "x" / "y", tmp_path / "a")
    os.symlink(tmp_path / "x" / "y", tmp_path / "b")
    folders = list(walk_folders(tmp_path))
    assert [f.parts for f in folders] == [(), ("x",), ("x", "y"), ("a",)]
    assert [f.via_link for f in folders] == [False, False, False, True]
    assert folders[-1].real == os.path.realpath(tmp_path / "x" / "y")
    assert folders[0].subdirs == ("a", "x") and [name for name, _ in folders[0].skipped_links] == ["b"]


def test_manifest_rows_naming_one_file_twice_keep_the_first(tmp_path: Path, registry: Registry) -> None:
    images = files(tmp_path / "imgs", 3)
    os.symlink(images[0], tmp_path / "imgs" / "alias.png")
    os.link(images[1], tmp_path / "imgs" / "hard.png")
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "path,label,generator\nimgs/0.png,fake,g\nimgs/1.png,real,\nimgs/2.png,real,\n"
        "imgs/alias.png,real,\nimgs/hard.png,real,\n"
    )
    index = open_dataset(manifest, registry=registry)
    assert sorted(s.path.name for s in index.samples) == ["0.png", "1.png", "2.png"]
    assert reasons(index) == {
        "imgs/alias.png": f"{DUPLICATE_PATH}{images[0]}",
        "imgs/hard.png": f"{DUPLICATE_PATH}{images[1]}",
    }
    warning = index.metadata["warnings"][0]
    assert warning.startswith("LABEL CONFLICT: 1 file(s)") and "the earlier row" in warning


@pytest.mark.parametrize("layout", ["genimage", "cifake"])
def test_other_layouts_resolve_links_too(tmp_path: Path, registry: Registry, layout: str) -> None:
    real, fake = ("g/train/nature", "g/train/ai") if layout == "genimage" else ("train/REAL", "train/FAKE")
    files(tmp_path / real, 2)
    files(tmp_path / fake, 2)
    os.symlink(".", tmp_path / real / "loop")
    os.symlink(tmp_path / fake / "0.png", tmp_path / real / "copy.png")
    index = open_dataset(tmp_path, registry=registry)
    assert index.layout == layout
    assert Counter(s.label for s in index.samples) == {REAL: 2, FAKE: 2}
    assert sum(r.startswith(DUPLICATE_PATH) for r in reasons(index).values()) == 1
