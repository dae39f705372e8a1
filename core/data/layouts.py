"""Dataset layouts on disk, and :func:`open_dataset`, which finds the right one for a folder or manifest.

Each layout is a pair of plain functions (``detect_*`` looks at a few folder names, ``load_*`` walks the
tree once with ``os.scandir``): the well-known ones are in :mod:`dfzoo.data.folder_layouts`, their building
blocks in :mod:`dfzoo.data.layout_kit`, and :mod:`dfzoo.plugins.datasets.layouts` offers them as
:class:`~dfzoo.DatasetSpec` plugins, so a third-party layout is found the same way. Loading never decodes an
image: bad images are the decoder's business (:func:`dfzoo.data.decode.load_image`, ``dfzoo data inspect``).
This module opens a dataset: it picks the layout and checks that it found something. The names of the other
two modules stay importable from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..spec import PROGRESS, keyword_defaults, reject_unknown
from .folder_layouts import (
    CIFAKE_GENERATOR,
    CIFAKE_SIGNATURE,
    detect_cifake,
    detect_forensynths,
    detect_genimage,
    load_cifake,
    load_forensynths,
    load_genimage,
)
from .layout_kit import SPLITS, DatasetError, IndexBuilder, find_dir, one_class_warnings, path_conflict_warning
from .sample import DatasetIndex
from .scan import IMAGE_EXTENSIONS, is_image_name, scan_images, walk_folders

if TYPE_CHECKING:
    from ..registry import Registry
    from ..spec import DatasetSpec

log = logging.getLogger(__name__)

# -- opening a dataset ----------------------------------------------------------------------------------


def _any_image(root: Path) -> bool:
    return any(folder.images for folder in walk_folders(root))


def _layouts(registry: Registry) -> list[DatasetSpec]:
    specs = [entry.spec for entry in registry.entries("dataset") if entry.spec.needs_root]
    return sorted(specs, key=lambda spec: (-spec.priority, spec.name))


def _expectations(specs: Iterable[DatasetSpec], notes: Mapping[str, str] | None = None) -> str:
    notes = notes or {}
    lines = [f"  {spec.name}: {spec.summary}{notes.get(spec.name, '')}" for spec in specs]
    return "\n".join(lines)


def detect_layout(path: Path, registry: Registry) -> DatasetSpec:
    """The first layout (highest priority, then name) whose ``detect`` recognises ``path``."""
    specs = _layouts(registry)
    notes: dict[str, str] = {}
    for spec in specs:
        if spec.detect is None:
            notes[spec.name] = " (no auto-detection; pass it by name)"
            continue
        try:
            if spec.detect(path):
                log.debug("%s: detected layout %s", path, spec.name)
                return spec
        except Exception as error:  # a third-party detector must not break opening other datasets
            log.warning("layout %s failed to inspect %s: %s", spec.name, path, error)
            notes[spec.name] = f" (its detector failed: {type(error).__name__}: {error})"
    if path.is_dir() and not _any_image(path):
        raise DatasetError(
            f"{path} holds no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}; hidden files skipped)"
        )
    what = "file" if path.is_file() else "folder"
    raise DatasetError(
        f"no dataset layout recognises the {what} {path}. Layouts tried, and what each "
        f"expects:\n{_expectations(specs, notes)}\n"
        f"Rename the folders to one of these, pass a layout by name, or write a CSV/JSONL manifest "
        f"(columns path,label,generator)."
    )


def load_with(
    spec: DatasetSpec, root: Path | None, params: Mapping[str, Any], *, progress: bool = True
) -> DatasetIndex:
    """Call ``spec.load`` with its default params under the given ones (unknown params are an error), and
    the caller's ``progress`` setting when the loader takes one (a long load, such as building the zoo)."""
    if spec.params:
        what = f"dataset {spec.name!r} has no parameter(s)"
        reject_unknown(params, spec.params, DatasetError, what, "its parameters")
    extra = {PROGRESS: progress} if PROGRESS in keyword_defaults(spec.load) else {}
    index = spec.load(root, **{**spec.params, **params, **extra})
    index.metadata.setdefault("warnings", [])
    return index


def open_dataset(
    source: str | Path,
    layout: str | None = None,
    registry: Registry | None = None,
    *,
    progress: bool = True,
    **params: Any,
) -> DatasetIndex:
    """A dataset by registered name (``"zoo"``), or a folder / CSV-JSONL manifest with its layout found.

    ``layout`` names a registered layout and skips detection; ``params`` go to the layout's ``load``;
    ``progress=False`` silences a loader that shows progress.
    Raises ``FileNotFoundError`` for a missing path, :class:`DatasetError` (a ``ValueError``) for an empty
    folder, an unrecognised layout or a layout that finds nothing, and ``UnknownNameError`` (a ``KeyError``,
    with close names suggested) for an unknown layout name.
    """
    if registry is None:
        from ..registry import current_registry

        registry = current_registry()
    names = set(registry.names("dataset"))
    if isinstance(source, str) and source in names:
        named = registry.dataset(source)
        if not named.needs_root:
            if layout:
                raise DatasetError(f"{source!r} is a named dataset; it takes no layout")
            return load_with(named, None, params, progress=progress)
    path = Path(source).expanduser()
    if not path.exists():
        if isinstance(source, str) and source in names:
            raise FileNotFoundError(
                f"{source!r} is a layout, not a dataset: give a folder, e.g. `--dataset PATH --layout {source}`"
            )
        named_datasets = [spec.name for spec in (registry.dataset(n) for n in sorted(names)) if not spec.needs_root]
        hint = f" and it is not a named dataset ({', '.join(named_datasets)})" if named_datasets else ""
        raise FileNotFoundError(f"dataset path {path} does not exist{hint}")
    if layout:
        spec = registry.dataset(layout)
        if not spec.needs_root:
            raise DatasetError(
                f"{layout!r} is a named dataset, not a layout; layouts: {', '.join(s.name for s in _layouts(registry))}"
            )
    else:
        spec = detect_layout(path, registry)
    index = load_with(spec, path, params, progress=progress)
    if not index.samples:
        if path.is_dir() and not _any_image(path):
            raise DatasetError(f"{path} holds no image files")
        examples = "; ".join(f"{p}: {r}" for p, r in index.skipped[:3])
        raise DatasetError(
            f"layout {spec.name!r} found no labelled images in {path}. It expects: "
            f"{spec.summary}" + (f". Skipped {len(index.skipped)} files, e.g. {examples}" if examples else "")
        )
    return index


__all__ = [
    "CIFAKE_GENERATOR",
    "CIFAKE_SIGNATURE",
    "SPLITS",
    "DatasetError",
    "IndexBuilder",
    "detect_cifake",
    "detect_forensynths",
    "detect_genimage",
    "detect_layout",
    "find_dir",
    "is_image_name",
    "load_cifake",
    "load_forensynths",
    "load_genimage",
    "load_with",
    "one_class_warnings",
    "open_dataset",
    "path_conflict_warning",
    "scan_images",
]
