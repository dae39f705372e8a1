"""What a dataset holds, before anyone trains on it: counts, formats, sizes, unreadable files, duplicates
(by path: dropped by the layout; by content: kept, and a label conflict called out), and biases.

:func:`inspect_dataset` returns an :class:`InspectReport` (data, JSON-ready); :func:`render_text` turns it
into the tables ``dfzoo data inspect`` prints. Decoding goes through :func:`dfzoo.data.decode.load_image`,
the decoder every detector uses, so "unreadable" here means unreadable in a benchmark run too.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from .decode import ImageDecodeError, load_image
from .duplicates import LABEL_CONFLICT, LABEL_NAMES, find_duplicates
from .sample import FAKE, REAL, DatasetIndex, Sample
from .scan import DUPLICATE_PATH, LINK_NOT_FOLLOWED

if TYPE_CHECKING:
    from ..registry import Registry

CLASS_NAMES = LABEL_NAMES
LAYOUT_SOURCES = {  # how report.layout_source reads in text
    "detected": "guessed from the folder names; --layout NAME forces another",
    "given": "given with --layout",
    "named dataset": "a named dataset",
}


@dataclass
class CountRow:
    """Images of one generator (in one split): reals and fakes."""

    split: str
    generator: str
    family: str
    real: int
    fake: int


@dataclass
class ClassStats:
    """Formats and pixel sizes of the readable images of one class (sizes after EXIF rotation when decoded)."""

    label: str
    images: int
    readable: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    width: tuple[int, int] | None = None  # (min, max)
    height: tuple[int, int] | None = None  # (min, max)

    def _add(self, image_format: str, size: tuple[int, int]) -> None:
        self.readable += 1
        self.formats[image_format] = self.formats.get(image_format, 0) + 1
        w, h = size
        self.width = (w, w) if self.width is None else (min(self.width[0], w), max(self.width[1], w))
        self.height = (h, h) if self.height is None else (min(self.height[0], h), max(self.height[1], h))


@dataclass
class InspectReport:
    """Everything ``dfzoo data inspect`` reports, in a form tests and ``--json`` can use directly."""

    name: str
    layout: str
    root: str
    fingerprint: str
    decoded: bool
    counts: list[CountRow]
    classes: list[ClassStats]
    unreadable: list[tuple[str, str]]  # (path, reason)
    skipped: list[tuple[str, str]]  # files the layout did not use, (path, reason)
    warnings: list[str]
    notes: list[str]  # things a detector could learn instead of the real/fake signal
    layout_source: str = "detected"  # how the layout was chosen: "detected", "given" or "named dataset"
    assumed: list[str] = field(default_factory=list)  # what the layout assumed about the data (said, not hidden)
    path_duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped path, kept path)
    content_duplicates: list[dict[str, Any]] = field(default_factory=list)  # DuplicateGroup.to_dict()

    @property
    def total(self) -> int:
        return sum(row.real + row.fake for row in self.counts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total"] = self.total
        return out


def probe(sample: Sample, decode: bool = True) -> tuple[str, tuple[int, int]]:
    """(format, (width, height)) of one image. With ``decode`` the whole image goes through ``load_image``;
    without, only the header is read (fast, but truncated files pass). Raises :class:`ImageDecodeError`."""
    if sample.path is None:
        image = load_image(sample.image)
        return "memory", image.size
    label = str(sample.path)
    try:
        data = sample.path.read_bytes() if decode else None
    except OSError as error:
        raise ImageDecodeError(label, f"cannot read file ({error.strerror or error})") from error
    if data is not None:  # decode
        image = load_image(data)
        with Image.open(io.BytesIO(data)) as header:
            return header.format or "unknown", image.size
    try:
        if os.path.getsize(sample.path) == 0:
            raise ImageDecodeError(label, "empty file")
        with Image.open(sample.path) as header:
            return header.format or "unknown", header.size
    except FileNotFoundError as error:
        raise ImageDecodeError(label, "file not found") from error
    except UnidentifiedImageError as error:
        raise ImageDecodeError(label, "not an image (unidentified format)") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(label, f"corrupt image header ({error})") from error


def _probe_safely(args: tuple[Sample, bool]) -> tuple[str, tuple[int, int]] | str:
    try:
        return probe(*args)
    except ImageDecodeError as error:
        return error.reason


def inspect_index(
    index: DatasetIndex,
    decode: bool = True,
    progress: bool = True,
    workers: int | None = None,
    layout_source: str = "detected",
) -> InspectReport:
    """Probe every sample of ``index`` (in a few threads: Pillow decodes without the GIL) and hash those that
    may share their bytes with another (groups recorded in ``index.metadata["content_duplicates"]``)."""
    from tqdm.auto import tqdm

    counts: Counter[tuple[str, str, int]] = Counter((s.split, s.generator, s.label) for s in index.samples)
    rows = []
    for split, generator in sorted({(split, gen) for split, gen, _ in counts}):
        rows.append(
            CountRow(
                split,
                generator,
                index.families.get(generator, ""),
                counts[(split, generator, REAL)],
                counts[(split, generator, FAKE)],
            )
        )
    labels = sorted({s.label for s in index.samples})
    per_label = Counter(s.label for s in index.samples)
    classes = {label: ClassStats(CLASS_NAMES.get(label, str(label)), per_label[label]) for label in labels}
    unreadable: list[tuple[str, str]] = []
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = [(sample, decode) for sample in index.samples]
    bar = tqdm(
        total=len(jobs), desc="decoding" if decode else "reading headers", unit="img", disable=not progress, leave=False
    )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for sample, result in zip(index.samples, pool.map(_probe_safely, jobs, chunksize=64), strict=True):
            if isinstance(result, str):
                unreadable.append((sample.display_name, result))
            else:
                classes[sample.label]._add(*result)
            bar.update()
    bar.close()
    stats = [classes[label] for label in labels]
    groups = find_duplicates(index)
    by_path = [
        (path, reason[len(DUPLICATE_PATH) :]) for path, reason in index.skipped if reason.startswith(DUPLICATE_PATH)
    ]
    return InspectReport(
        name=index.name,
        layout=index.layout,
        root=str(index.root or ""),
        fingerprint=index.fingerprint(),
        decoded=decode,
        counts=rows,
        classes=stats,
        unreadable=unreadable,
        skipped=list(index.skipped),
        warnings=list(index.metadata.get("warnings", [])),
        notes=bias_notes(stats),
        layout_source=layout_source,
        assumed=list(index.metadata.get("assumed") or []),
        path_duplicates=by_path,
        content_duplicates=[group.to_dict() for group in groups],
    )


def inspect_dataset(
    source: str | Path,
    layout: str | None = None,
    decode: bool = True,
    registry: Registry | None = None,
    progress: bool = True,
    **params: Any,
) -> InspectReport:
    """Open ``source`` like :func:`dfzoo.data.layouts.open_dataset` and inspect every image in it."""
    from ..registry import current_registry
    from .layouts import open_dataset

    registry = registry or current_registry()
    index = open_dataset(source, layout=layout, registry=registry, **params)
    if layout:
        how = "given"
    elif isinstance(source, str) and source in registry.names("dataset") and not registry.dataset(source).needs_root:
        how = "named dataset"
    else:
        how = "detected"
    return inspect_index(index, decode=decode, progress=progress, layout_source=how)


def bias_notes(classes: Sequence[ClassStats]) -> list[str]:
    """Shortcuts between the classes: disjoint file formats or non-overlapping sizes let a detector separate
    reals from fakes without looking at generation artefacts."""
    by_name = {c.label: c for c in classes}
    real, fake = by_name.get("real"), by_name.get("fake")
    if not real or not fake or not real.readable or not fake.readable:
        return []
    notes = []
    if not set(real.formats) & set(fake.formats):
        notes.append(
            f"reals are {'/'.join(sorted(real.formats))} and fakes {'/'.join(sorted(fake.formats))}: "
            f"the file format alone separates the classes"
        )
    for axis in ("width", "height"):
        r, f = getattr(real, axis), getattr(fake, axis)
        if r[1] < f[0] or f[1] < r[0]:
            notes.append(
                f"real {axis}s {r[0]}-{r[1]} px and fake {axis}s {f[0]}-{f[1]} px do not overlap: "
                f"image size alone separates the classes"
            )
    return notes


def _range(pair: tuple[int, int] | None) -> str:
    if pair is None:
        return "-"
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}-{pair[1]}"


def _relative(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root) if root else path
    except ValueError:
        return path


def _reason_kind(reason: str) -> str:
    """A reason without the path it names, so the summary counts one line per kind."""
    return LINK_NOT_FOLLOWED if reason.startswith(LINK_NOT_FOLLOWED) else reason


def _listed(lines: list[str], title: str, entries: Sequence[str], limit: int) -> None:
    lines.append(title)
    lines += [f"  {entry}" for entry in entries[:limit]]
    if len(entries) > limit:
        lines.append(f"  ... and {len(entries) - limit} more (--json lists all)")
    lines.append("")


def render_text(report: InspectReport, limit: int = 50) -> str:
    """The report as plain-text tables (``limit`` caps each file list; ``--json`` has them all)."""
    from tabulate import tabulate

    reals = sum(row.real for row in report.counts)
    conflicts = [warning for warning in report.warnings if warning.startswith(LABEL_CONFLICT)]
    lines = [
        f"dataset {report.name} at {report.root}",
        f"layout {report.layout} ({LAYOUT_SOURCES.get(report.layout_source, report.layout_source)})",
        *(f"assumed: {note}" for note in report.assumed),
        f"{report.total} images: {reals} real, {report.total - reals} fake; fingerprint {report.fingerprint}",
        *(f"!! {warning}" for warning in conflicts),
        "",
    ]
    with_split = any(row.split for row in report.counts)
    headers = (["split"] if with_split else []) + ["generator", "family", "real", "fake"]
    table = [
        ([row.split] if with_split else []) + [row.generator, row.family or "?", row.real, row.fake]
        for row in report.counts
    ]
    lines += [tabulate(table, headers=headers), ""]
    mode = "decoded" if report.decoded else "headers only"
    class_table = [
        [
            c.label,
            c.images,
            c.readable,
            ", ".join(f"{k} {v}" for k, v in sorted(c.formats.items())),
            _range(c.width),
            _range(c.height),
        ]
        for c in report.classes
    ]
    lines += [
        tabulate(class_table, headers=["class", "images", f"readable ({mode})", "formats", "width", "height"]),
        "",
    ]
    skipped = [(path, reason) for path, reason in report.skipped if not reason.startswith(DUPLICATE_PATH)]
    for title, files in (("unreadable", report.unreadable), ("skipped", skipped)):
        if not files:
            continue
        reasons = Counter(_reason_kind(reason) for _, reason in files)
        summary = "; ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
        _listed(
            lines,
            f"{title} files: {len(files)} ({summary})",
            [f"{_relative(path, report.root)}: {reason}" for path, reason in files],
            limit,
        )
    if report.path_duplicates:
        _listed(
            lines,
            f"duplicates by path: {len(report.path_duplicates)} dropped (a file reached by two paths is indexed once)",
            [
                f"{_relative(path, report.root)}: same file as {_relative(kept, report.root)}"
                for path, kept in report.path_duplicates
            ],
            limit,
        )
    if report.content_duplicates:
        groups = report.content_duplicates
        copies = sum(len(group["paths"]) - 1 for group in groups)
        _listed(
            lines,
            f"duplicates by content: {len(groups)} set(s) of identical files, {copies} extra "
            f"cop{'y' if copies == 1 else 'ies'} (kept)",
            [
                (f"{LABEL_CONFLICT}: " if group["conflict"] else "")
                + " = ".join(
                    f"{_relative(path, report.root)} ({label})"
                    for path, label in zip(group["paths"], group["labels"], strict=True)
                )
                for group in groups
            ],
            limit,
        )
    for title, items in (("warnings", report.warnings), ("possible shortcuts", report.notes)):
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items]
            lines.append("")
    if not report.unreadable and report.decoded:
        lines.append("every image decodes")
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "ClassStats",
    "CountRow",
    "InspectReport",
    "bias_notes",
    "inspect_dataset",
    "inspect_index",
    "probe",
    "render_text",
]
