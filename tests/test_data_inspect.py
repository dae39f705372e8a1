"""`dfzoo data inspect`: counts, formats, sizes and unreadable files of a dataset with some bad images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfzoo.cli import main
from dfzoo.data.inspect import inspect_dataset, render_text
from dfzoo.registry import Registry
from tests.synthetic import smooth_image


def _save(path: Path, size: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(np.random.default_rng(size), size)).save(path, fmt)


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """ForenSynths layout: gan_a fine (8 and 12 px), gan_b with three broken files and a stray text file."""
    root = tmp_path / "messy"
    for i in range(3):
        _save(root / "gan_a" / "0_real" / f"{i}.png", 8)
        _save(root / "gan_a" / "1_fake" / f"{i}.png", 12)
        _save(root / "gan_b" / "0_real" / f"{i}.jpg", 8)
    _save(root / "gan_b" / "1_fake" / "ok.png", 16)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    (root / "gan_b" / "1_fake" / "cut.jpg").write_bytes(data[: len(data) - 100])  # header intact, scan cut
    (root / "gan_b" / "1_fake" / "empty.png").write_bytes(b"")
    (root / "gan_b" / "0_real" / "letter.png").write_text("dear reviewer")
    (root / "gan_b" / "notes.txt").write_text("generated on a tuesday")
    return root


def test_report_counts_formats_sizes_and_bad_files(messy: Path, registry: Registry) -> None:
    report = inspect_dataset(messy, progress=False)
    assert report.layout == "forensynths" and report.decoded
    assert [(r.generator, r.real, r.fake) for r in report.counts] == [("gan_a", 3, 3), ("gan_b", 4, 3)]
    assert report.total == 13
    unreadable = {Path(p).name: reason for p, reason in report.unreadable}
    assert unreadable == {
        "cut.jpg": "truncated image",
        "empty.png": "empty file",
        "letter.png": "not an image (unidentified format)",
    }
    real, fake = report.classes
    assert (real.label, real.images, real.readable, real.formats) == ("real", 7, 6, {"JPEG": 3, "PNG": 3})
    assert (fake.label, fake.images, fake.readable, fake.formats) == ("fake", 6, 4, {"PNG": 4})
    assert real.width == (8, 8) and fake.width == (12, 16) and fake.height == (12, 16)
    assert [Path(p).name for p, _ in report.skipped] == ["notes.txt"]
    assert report.notes == [
        "real widths 8-8 px and fake widths 12-16 px do not overlap: image size alone separates the classes",
        "real heights 8-8 px and fake heights 12-16 px do not overlap: image size alone separates the classes",
    ]


def test_headers_only_misses_truncation_but_not_garbage(messy: Path, registry: Registry) -> None:
    report = inspect_dataset(messy, decode=False, progress=False)
    unreadable = {Path(p).name: reason for p, reason in report.unreadable}
    assert set(unreadable) == {"empty.png", "letter.png"}
    assert unreadable["letter.png"] == "not an image (unidentified format)"


def test_format_shortcut_is_noted(tmp_path: Path, registry: Registry) -> None:
    for i in range(2):
        _save(tmp_path / "REAL" / f"{i}.jpg", 8)
        _save(tmp_path / "FAKE" / f"{i}.png", 8)
    report = inspect_dataset(tmp_path, progress=False)
    assert report.layout == "cifake" and report.unreadable == []
    assert report.notes == ["reals are JPEG and fakes PNG: the file format alone separates the classes"]
    assert "every image decodes" in render_text(report)


def test_cli_text(messy: Path, registry: Registry, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "inspect", str(messy)]) == 0
    out = capsys.readouterr().out
    assert "layout forensynths" in out and "13 images: 7 real, 6 fake" in out
    assert "gan_b/1_fake/cut.jpg: truncated image" in out
    assert "gan_b/1_fake/empty.png: empty file" in out
    assert "unreadable files: 3" in out and "skipped files: 1" in out
    table_rows = [line.split() for line in out.splitlines() if line.startswith(("gan_a", "gan_b"))]
    assert table_rows == [["gan_a", "?", "3", "3"], ["gan_b", "?", "4", "3"]]


def test_cli_json(messy: Path, registry: Registry, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "inspect", str(messy), "--layout", "forensynths", "--no-decode", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 13 and data["decoded"] is False
    assert sorted(Path(p).name for p, _ in data["unreadable"]) == ["empty.png", "letter.png"]
    assert data["fingerprint"] and data["counts"][0]["generator"] == "gan_a"


def test_cli_errors(tmp_path: Path, messy: Path, registry: Registry, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "inspect", str(tmp_path / "absent")]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "inspect", str(messy), "--layout", "forensynth"]) != 0
    assert "did you mean forensynths" in capsys.readouterr().err


# -- duplicates ------------------------------------------------------------------------------------------


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    """ganA with a plain copy of a real, a fake's bytes filed as real, a folder loop and a linked fake."""
    import os
    import shutil

    root = tmp_path / "copies"
    for i in range(2):
        _save(root / "ganA" / "0_real" / f"r{i}.png", 8 + i)
        _save(root / "ganA" / "1_fake" / f"f{i}.png", 12 + i)
    shutil.copy(root / "ganA" / "0_real" / "r0.png", root / "ganA" / "0_real" / "r0_copy.png")
    shutil.copy(root / "ganA" / "1_fake" / "f0.png", root / "ganA" / "0_real" / "sneaky.png")
    os.symlink(".", root / "ganA" / "0_real" / "loop")
    os.symlink("f1.png", root / "ganA" / "1_fake" / "alias.png")
    return root


def test_duplicates_by_path_and_content_are_reported_and_recorded(copies: Path, registry: Registry) -> None:
    from dfzoo.data.inspect import inspect_index
    from dfzoo.data.layouts import open_dataset

    index = open_dataset(copies, registry=registry)
    report = inspect_index(index, progress=False)
    fake = copies / "ganA" / "1_fake"
    assert report.path_duplicates == [(str(fake / "alias.png"), str(fake / "f1.png"))]
    conflict, plain = report.content_duplicates
    assert conflict["conflict"] and not plain["conflict"]
    assert sorted(zip(map(lambda p: Path(p).name, conflict["paths"]), conflict["labels"], strict=True)) == [
        ("f0.png", "fake"),
        ("sneaky.png", "real"),
    ]
    assert sorted(Path(p).name for p in plain["paths"]) == ["r0.png", "r0_copy.png"]
    assert index.metadata["content_duplicates"] == report.content_duplicates
    assert any(
        w.startswith("LABEL CONFLICT: 1 set(s) of identical files are labelled both real and fake")
        for w in index.metadata["warnings"]
    )
    assert report.warnings == index.metadata["warnings"]


def test_cli_shows_layout_and_duplicates(copies: Path, registry: Registry, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "inspect", str(copies)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1] == "layout forensynths (guessed from the folder names; --layout NAME forces another)"
    assert lines[3].startswith("!! LABEL CONFLICT: 1 set(s) of identical files")
    assert "duplicates by path: 1 dropped" in out and "ganA/1_fake/alias.png: same file as ganA/1_fake/f1.png" in out
    assert "duplicates by content: 2 set(s) of identical files, 2 extra copies (kept)" in out
    assert "LABEL CONFLICT: ganA/0_real/sneaky.png (real) = ganA/1_fake/f0.png (fake)" in out
    assert "skipped files: 1 (folder link not followed: 1)" in out
    assert main(["data", "inspect", str(copies), "--layout", "forensynths", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layout_source"] == "given" and len(data["content_duplicates"]) == 2
    assert data["path_duplicates"] == [[str(copies / "ganA/1_fake/alias.png"), str(copies / "ganA/1_fake/f1.png")]]


def test_only_files_sharing_a_size_are_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dfzoo.data.duplicates as duplicates
    from dfzoo.data.sample import Sample

    hashed: list[str] = []
    content_id = duplicates.content_id

    def counting(sample: Sample) -> str:
        hashed.append(sample.path.name)
        return content_id(sample)

    monkeypatch.setattr(duplicates, "content_id", counting)
    contents = {"a.png": b"1234", "b.png": b"5678", "c.png": b"1234", "d.png": b"123456", "e.png": b"x"}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    samples = [Sample(path=tmp_path / name, label=i % 2) for i, name in enumerate([*contents, "missing.png"])]
    keys = duplicates.content_keys(samples)
    assert sorted(hashed) == ["a.png", "b.png", "c.png"]
    assert keys[0] == keys[2] == content_id(samples[0]) != keys[1]
    assert keys[3] == "size:6" and keys[4] == "size:1" and keys[5].startswith("unreadable:")
    (group,) = duplicates.duplicate_groups(samples)
    assert [s.path.name for s in group.samples] == ["a.png", "c.png"] and not group.conflict
