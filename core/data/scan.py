"""Fast directory walking: find image files by extension with ``os.scandir``, never decoding or stat-ing them.

Hidden files and folders (names starting with ".") are skipped everywhere.

Links, so that datasets assembled from links work and nothing is read twice:

- The real folders under the root are walked first (depth-first, in name order); folders behind links come
  after, in the order their links were met. A link may point outside the root: its folder is read like any
  other.
- A folder link is not followed when its target holds the folder the link sits in, the dataset root or the
  folder of any link on the way there (a loop: ``0_real/loop -> .``, ``gan/0_real/more -> ..``), or when an
  earlier link already leads to the same target. Each refusal is listed in :attr:`Folder.skipped_links`.
- Every folder knows its resolved path and every linked image file its target, so a file reached by two
  paths is indexed once (:func:`first_places`): at its real place when that is one of the paths (no link on
  the way), else at the first path met; the other path is recorded as a ``"duplicate path of <kept path>"``
  (:class:`dfzoo.data.layout_kit.IndexBuilder`, :func:`scan_images`).

No file is stat-ed for this: a folder's resolved path is its parent's plus its name, and
``os.path.realpath`` runs only for entries that are links.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"})
DUPLICATE_PATH = "duplicate path of "  # reason prefix of a file reached again by another path
LINK_NOT_FOLLOWED = "folder link not followed"


def is_image_name(name: str) -> bool:
    """True when ``name`` has an image extension (case-insensitive); ``"png"`` alone is not an image."""
    dot = name.rfind(".")
    return dot > 0 and name[dot + 1 :].lower() in IMAGE_EXTENSIONS


_make_child = getattr(Path, "_make_child_relpath", None)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects (paths, samples).

    Each generation-0 collection rescans every object built so far, which makes a 100,000-file scan about
    twice as slow; reference counting still frees everything. The previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def child_path(parent: Path, name: str) -> Path:
    """``parent / name`` for a single name straight from ``os.scandir`` (no separators to parse).

    Path parsing dominates a scan in Python 3.11 (``Path(str)`` ~5-10 us); CPython's own child constructor
    skips it. The public ``/`` is the fallback where that private helper is absent or changes.
    """
    if _make_child is not None:
        child = _make_child(parent, name)
        if isinstance(child, Path):
            return child
    return parent / name


def _sorted_entries(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            entries = [entry for entry in it if not entry.name.startswith(".")]
    except (PermissionError, NotADirectoryError, FileNotFoundError):
        return []
    entries.sort(key=lambda entry: entry.name)
    return entries


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _join(folder: str, name: str) -> str:
    return folder + name if folder.endswith(os.sep) else folder + os.sep + name


def _within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


_NO_LINKS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Folder:
    """One folder met while walking: where it is (``parts`` relative to the root) and what it holds by name.

    ``images`` are image file names, ``others`` every other non-hidden file or broken link (``broken`` names
    the broken links), ``subdirs`` the folders inside that the walk enters; all sorted. ``real`` is the
    folder's resolved path, ``via_link`` says a folder link led here, ``image_links`` maps image names that
    are links to their resolved targets, and ``skipped_links`` holds (name, reason) for folder links inside
    that are not followed (see the module docstring).
    """

    parts: tuple[str, ...]
    path: Path
    images: tuple[str, ...]
    others: tuple[str, ...]
    subdirs: tuple[str, ...]
    real: str = ""
    via_link: bool = False
    image_links: Mapping[str, str] = field(default_factory=dict)
    broken: tuple[str, ...] = ()
    skipped_links: tuple[tuple[str, str], ...] = ()

    @property
    def linked(self) -> bool:
        """A link is involved: some file here may also be reached by another path."""
        return self.via_link or bool(self.image_links)

    def real_path(self, name: str) -> str:
        """The resolved path of the file ``name`` in this folder (the identity of the file on disk)."""
        return self.image_links.get(name) or _join(self.real, name)


# a folder link to follow later: (parts, logical path, resolved target, resolved folders that must not recur)
_Pending = tuple[tuple[str, ...], Path, str, tuple[str, ...]]


def walk_folders(root: str | Path) -> Iterator[Folder]:
    """Every folder under ``root``: the real tree first (root first, then depth-first in name order), then the
    folders behind links, each once, in the order their links were met (the rules in the module docstring)."""
    root = Path(root)
    root_real = os.path.realpath(root)
    pending: deque[_Pending] = deque()
    followed: dict[str, Path] = {}  # resolved link target -> the link that reads it
    yield from _walk(((), root, root_real, (root_real,)), False, pending, followed)
    while pending:
        yield from _walk(pending.popleft(), True, pending, followed)


def _walk(start: _Pending, via_link: bool, pending: deque[_Pending], followed: dict[str, Path]) -> Iterator[Folder]:
    """Depth-first over the real folders under ``start``; folder links met are queued on ``pending``."""
    parts, path, real, chain = start
    stack: list[tuple[tuple[str, ...], Path, str]] = [(parts, path, real)]
    while stack:
        parts, folder, real = stack.pop()
        images: list[str] = []
        others: list[str] = []
        subdirs: list[str] = []
        real_subdirs: list[str] = []
        image_links: dict[str, str] = {}
        broken: list[str] = []
        skipped_links: list[tuple[str, str]] = []
        for entry in _sorted_entries(str(folder)):
            name = entry.name
            if _is_dir(entry):
                if not entry.is_symlink():
                    subdirs.append(name)
                    real_subdirs.append(name)
                    continue
                target = os.path.realpath(entry.path)
                reason = _refuse_link(target, (real, *chain), followed)
                if reason:
                    skipped_links.append((name, reason))
                    continue
                link = child_path(folder, name)
                followed[target] = link
                pending.append(((*parts, name), link, target, (*chain, real)))
                subdirs.append(name)
            elif is_image_name(name) and _is_file(entry):
                images.append(name)
                if entry.is_symlink():
                    image_links[name] = os.path.realpath(entry.path)
            else:
                others.append(name)
                if entry.is_symlink() and not os.path.exists(entry.path):
                    broken.append(name)
        yield Folder(
            parts,
            folder,
            tuple(images),
            tuple(others),
            tuple(subdirs),
            real,
            via_link,
            image_links or _NO_LINKS,
            tuple(broken),
            tuple(skipped_links),
        )
        stack.extend(((*parts, name), child_path(folder, name), _join(real, name)) for name in reversed(real_subdirs))


def _refuse_link(target: str, guarded: tuple[str, ...], followed: Mapping[str, Path]) -> str:
    """Why a folder link to ``target`` is not followed, or "" to follow it."""
    for place in guarded:
        if _within(place, target):
            return f"{LINK_NOT_FOLLOWED}: it points to {target}, which holds it or the dataset root (a loop)"
    if target in followed:
        return f"{LINK_NOT_FOLLOWED}: {target} is already read through {followed[target]}"
    return ""


def scan_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursive), in ``sorted(Path)`` order, found by extension alone.

    A file reached by several paths (links) is listed once (:func:`first_places`).
    """
    out: list[Path] = []
    with gc_paused():
        folders = {folder.parts: folder for folder in walk_folders(root)}
        if folders:
            _in_name_order(folders[()], folders, _repeated_files(list(folders.values())), out)
    return out


def _repeated_files(folders: Sequence[Folder]) -> set[tuple[tuple[str, ...], str]]:
    """(parts, name) of every image whose file is kept at another path."""
    if not any(folder.linked for folder in folders):
        return set()
    entries = [(folder, name) for folder in folders for name in folder.images]
    kept = first_places(entries)
    return {(folder.parts, name) for i, (folder, name) in enumerate(entries) if kept[folder.real_path(name)] != i}


def first_places(entries: Sequence[tuple[Folder, str]]) -> dict[str, int]:
    """Resolved file path -> the position in ``entries`` (folder, image name) that keeps the file: its real
    place (no link on the way) when that is among them, else the first one met."""
    kept: dict[str, int] = {}
    for i, (folder, name) in enumerate(entries):
        key = folder.real_path(name)
        j = kept.setdefault(key, i)
        if j != i and _through_link(*entries[j]) and not _through_link(folder, name):
            kept[key] = i
    return kept


def _through_link(folder: Folder, name: str) -> bool:
    return folder.via_link or name in folder.image_links


def _in_name_order(
    folder: Folder, folders: Mapping[tuple[str, ...], Folder], drop: set[tuple[tuple[str, ...], str]], out: list[Path]
) -> None:
    """Append the images of ``folder`` and of the folders inside, files and folders merged in name order."""
    subdirs = [name for name in folder.subdirs if (*folder.parts, name) in folders]
    position = 0
    for name in folder.images:
        while position < len(subdirs) and subdirs[position] < name:
            _in_name_order(folders[(*folder.parts, subdirs[position])], folders, drop, out)
            position += 1
        if not drop or (folder.parts, name) not in drop:
            out.append(child_path(folder.path, name))
    for sub in subdirs[position:]:
        _in_name_order(folders[(*folder.parts, sub)], folders, drop, out)


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def child_dirs(folder: Path) -> list[str]:
    """Names of the non-hidden folders directly inside ``folder`` (empty when it is not a folder)."""
    return [entry.name for entry in _sorted_entries(str(folder)) if _is_dir(entry)]


__all__ = [
    "DUPLICATE_PATH",
    "IMAGE_EXTENSIONS",
    "LINK_NOT_FOLLOWED",
    "Folder",
    "child_dirs",
    "child_path",
    "first_places",
    "gc_paused",
    "is_image_name",
    "scan_images",
    "walk_folders",
]
