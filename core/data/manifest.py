"""Datasets described by a CSV (with a header) or JSONL manifest instead of by folder names.

Columns: ``path`` (relative to the manifest's folder, or absolute), ``label`` (0/1/real/fake, any case),
``generator`` (may be blank for reals: they join the shared "real" pool), and optionally ``family`` and
``split``. A malformed row is an error naming its line; a listed file that does not exist is skipped with
a reason, so a partly synced copy of a dataset still opens and says what is missing. The same path listed
twice is an error; two paths to one file (a link, a hard link) keep the first row and skip the other as a
``"duplicate path of <kept path>"``, with a warning when their labels differ.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .families import REAL_FAMILY, known_family
from .layout_kit import SPLITS, DatasetError, one_class_warnings, path_conflict_warning
from .sample import FAKE, REAL, REAL_POOL, DatasetIndex, Sample
from .scan import DUPLICATE_PATH, gc_paused

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
REQUIRED_COLUMNS = ("path", "label", "generator")
_LABELS = {"0": REAL, "real": REAL, "1": FAKE, "fake": FAKE}


class ManifestError(DatasetError):
    """A manifest row (or its header) is malformed; ``line`` is 1-based, 0 for the file as a whole."""

    def __init__(self, manifest: Path, line: int, message: str) -> None:
        where = f"{manifest}, line {line}" if line else str(manifest)
        super().__init__(f"{where}: {message}")
        self.manifest = manifest
        self.line = line


def detect_manifest(path: Path) -> bool:
    """A file ending in .csv, .jsonl or .ndjson."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                path,
                1,
                f"header lacks column(s) {', '.join(missing)} "
                f"(found: {', '.join(header) or 'nothing'}); "
                f"expected {','.join(REQUIRED_COLUMNS)}[,family][,split]",
            )
        reader.fieldnames = header
        for row in reader:
            if None in row:
                raise ManifestError(
                    path, reader.line_num, f"{len(header) + len(row[None])} fields, the header has {len(header)}"
                )
            if not any((value or "").strip() for value in row.values()):
                continue  # a blank line
            yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                raise ManifestError(path, number, f"invalid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(path, number, f"expected a JSON object, got {type(row).__name__}")
            row = {str(key).strip().lower(): value for key, value in row.items()}
            missing = [c for c in ("path", "label") if c not in row]
            if missing:
                raise ManifestError(path, number, f"missing key(s) {', '.join(missing)}")
            yield number, row


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def parse_label(value: Any) -> int | None:
    """0/1/real/fake in any case (JSON numbers 0 and 1 too); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    return _LABELS.get(_text(value).lower())


@gc_paused()
def load_manifest(manifest: str | Path) -> DatasetIndex:
    """a CSV (with header) or JSONL file: path,label,generator[,family][,split]; paths relative to the file,
    labels 0/1/real/fake.

    Read into a :class:`DatasetIndex` rooted at the manifest's folder.
    """
    manifest = Path(manifest).expanduser().absolute()
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist")
    suffix = manifest.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(manifest, 0, f"unknown manifest type {suffix!r}; use .csv or .jsonl")
    rows = _csv_rows(manifest) if suffix == ".csv" else _jsonl_rows(manifest)
    base = manifest.parent
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    families: dict[str, str] = {}
    family_line: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    files: dict[tuple[int, int], Sample] = {}  # (device, inode) -> the first sample of that file
    conflicts: list[tuple[Sample, Sample]] = []
    for line, row in rows:
        raw_path = _text(row.get("path"))
        if not raw_path:
            raise ManifestError(manifest, line, "empty path")
        label = parse_label(row.get("label"))
        if label is None:
            raise ManifestError(manifest, line, f"label {row.get('label')!r} is not one of 0, 1, real, fake")
        generator = _text(row.get("generator"))
        if not generator:
            if label == FAKE:
                raise ManifestError(manifest, line, "a fake image needs a generator")
            generator = REAL_POOL
        family = REAL_FAMILY
        if label == FAKE:  # a fake row says its generator's family; reals are family "real" whatever the column
            family = _text(row.get("family")) or families.get(generator) or known_family(generator)
            if family:
                if families.setdefault(generator, family) != family:
                    raise ManifestError(
                        manifest,
                        line,
                        f"generator {generator!r} has family {family!r} here but "
                        f"{families[generator]!r} on line {family_line[generator]}",
                    )
                family_line.setdefault(generator, line)
        elif generator == REAL_POOL:
            families[REAL_POOL] = REAL_FAMILY
        split_text = _text(row.get("split")).lower()
        split = SPLITS.get(split_text, split_text)
        path = Path(raw_path).expanduser()
        path = path if path.is_absolute() else base / path
        key = os.path.normpath(path)
        if key in first_seen:
            raise ManifestError(manifest, line, f"{raw_path} is already listed on line {first_seen[key]}")
        first_seen[key] = line
        try:
            info = os.stat(path)
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            skipped.append((str(path), f"listed on line {line} but missing"))
            continue
        sample = Sample(path=path, label=label, generator=generator, family=family, split=split)
        first = files.setdefault((info.st_dev, info.st_ino), sample)
        if first is not sample:
            skipped.append((str(path), f"{DUPLICATE_PATH}{first.path}"))
            if first.label != label:
                conflicts.append((first, sample))
            continue
        samples.append(sample)
    warnings = one_class_warnings(samples)
    missing = [path for path, reason in skipped if not reason.startswith(DUPLICATE_PATH)]
    if missing:
        warnings.insert(0, f"{len(missing)} listed file(s) are missing, e.g. {missing[0]}")
    if conflicts:
        warnings.insert(0, path_conflict_warning(conflicts, "the earlier row"))
    return DatasetIndex(
        name=manifest.stem,
        layout="manifest",
        root=base,
        samples=samples,
        families=dict(sorted(families.items())),
        skipped=skipped,
        metadata={"warnings": warnings, "manifest": str(manifest)},
    )


__all__ = ["MANIFEST_SUFFIXES", "ManifestError", "detect_manifest", "load_manifest", "parse_label"]
