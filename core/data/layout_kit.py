"""What every folder layout builds on: split folder names and label vocabularies, :class:`IndexBuilder` (the
bookkeeping of one walk), the label-folder walk and the folder-name search that detection uses.

What a layout could not use is never dropped silently: files go to ``DatasetIndex.skipped`` with a reason,
and suspicious structure (an empty label folder, a generator with one class) to ``metadata["warnings"]``.
Links are resolved once (rules in :mod:`dfzoo.data.scan`): a file reached by two paths is indexed once, at
its real place when that is one of them, else at the first path met, and the other path is skipped as a
``"duplicate path of <kept path>"``; when the two paths disagree on the label, a warning says so. Files with
the same bytes under different names are found only where hashing is asked for (:mod:`dfzoo.data.duplicates`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .duplicates import LABEL_CONFLICT, label_name
from .families import REAL_FAMILY, known_family
from .sample import FAKE, REAL, REAL_POOL, DatasetIndex, Sample
from .scan import DUPLICATE_PATH, Folder, child_dirs, child_path, first_places, walk_folders

log = logging.getLogger(__name__)

# folder names that mean a split, as found on disk (lower case) -> the split recorded in Sample.split
SPLITS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
FORENSYNTHS_LABELS = {"0_real": REAL, "1_fake": FAKE}
GENIMAGE_LABELS = {"nature": REAL, "ai": FAKE}
CIFAKE_LABELS = {"real": REAL, "fake": FAKE}


class DatasetError(ValueError):
    """A dataset cannot be opened as asked; the message says what was expected and what was found."""


# -- shared bookkeeping ----------------------------------------------------------------------------------


class IndexBuilder:
    """Collects samples, skipped files and warnings while a layout walks a tree, then checks the result.

    ``label_dir`` given to :meth:`add` is the folder (relative parts) that says the label; every such folder
    seen (via :meth:`saw_label_dir`) and left without images becomes a warning. When links were met,
    :meth:`build` keeps each resolved file once (see the module docstring).
    """

    def __init__(self, root: Path, layout: str, families: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.layout = layout
        self.user_families = dict(families or {})
        self.samples: list[Sample] = []
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.families: dict[str, str] = {}
        self._label_dirs: dict[tuple[str, ...], int] = {}
        self._added: list[Folder] = []  # the folder of each add(), in order
        self._skipped_images: list[tuple[int, Folder, tuple[str, ...]]] = []  # (position in skipped, ...)

    def family_of(self, generator: str) -> str:
        if generator in self.user_families:
            return self.user_families[generator]
        return REAL_FAMILY if generator == REAL_POOL else known_family(generator)

    def saw_label_dir(self, parts: tuple[str, ...]) -> None:
        self._label_dirs.setdefault(parts, 0)

    def add(
        self,
        folder: Folder,
        label: int,
        generator: str,
        split: str = "",
        label_dir: tuple[str, ...] | None = None,
        family: str | None = None,
    ) -> None:
        """Every image of ``folder`` as a sample; reals get family "real", fakes their generator's family."""
        gen_family = self.family_of(generator) if family is None else family
        if gen_family and generator not in self.families:
            self.families[generator] = gen_family
        sample_family = REAL_FAMILY if label == REAL else gen_family
        base = folder.path
        self.samples.extend(
            Sample(path=child_path(base, name), label=label, generator=generator, family=sample_family, split=split)
            for name in folder.images
        )
        self._added.append(folder)
        if label_dir is not None:
            self._label_dirs[label_dir] = self._label_dirs.get(label_dir, 0) + len(folder.images)

    def skip(self, folder: Folder, names: Iterable[str], reason: str) -> None:
        """Images of ``folder`` the layout cannot use (e.g. outside any label folder), with the reason."""
        names = tuple(names)
        self._skipped_images.append((len(self.skipped), folder, names))
        self.skipped.extend((str(folder.path / name), reason) for name in names)

    def skip_others(self, folder: Folder) -> None:
        """Non-image files (with their extension, so a stray archive or README is visible), broken links and
        folder links the walk did not follow."""
        broken = set(folder.broken)
        for name in folder.others:
            suffix = Path(name).suffix.lower()
            what = f"{suffix} file" if suffix else "file without extension"
            reason = "broken link" if name in broken else f"not an image ({what})"
            self.skipped.append((str(folder.path / name), reason))
        self.skipped.extend((str(folder.path / name), reason) for name, reason in folder.skipped_links)

    def build(self, name: str | None = None, **metadata: Any) -> DatasetIndex:
        if any(folder.linked for folder in self._added) or any(f.linked for _, f, _ in self._skipped_images):
            self._drop_duplicate_paths()
        for parts, count in sorted(self._label_dirs.items()):
            if count == 0:
                self.warnings.append(f"{'/'.join(parts)}: folder holds no images")
        self.warnings.extend(one_class_warnings(self.samples))
        index = DatasetIndex(
            name=name or self.root.name,
            layout=self.layout,
            root=self.root,
            samples=self.samples,
            families=dict(sorted(self.families.items())),
            skipped=self.skipped,
            metadata={"warnings": self.warnings, **metadata},
        )
        for warning in self.warnings:
            log.warning("%s: %s", index.name, warning)
        return index

    def _drop_duplicate_paths(self) -> None:
        """Keep each resolved file once (:func:`~dfzoo.data.scan.first_places`); say which path the others repeat."""
        entries = [(folder, name) for folder in self._added for name in folder.images]
        kept = first_places(entries)
        found, samples = self.samples, []
        conflicts: list[tuple[Sample, Sample]] = []
        for sample, (folder, name) in zip(found, entries, strict=True):
            first = found[kept[folder.real_path(name)]]
            if first is sample:
                samples.append(sample)
                continue
            self.skipped.append((str(sample.path), f"{DUPLICATE_PATH}{first.path}"))
            if first.label != sample.label:
                conflicts.append((first, sample))
        self.samples = samples
        for position, folder, names in self._skipped_images:  # an unusable path of a file indexed elsewhere
            for at, name in enumerate(names, start=position):
                i = kept.get(folder.real_path(name))
                if i is not None:
                    self.skipped[at] = (self.skipped[at][0], f"{DUPLICATE_PATH}{found[i].path}")
        if conflicts:
            self.warnings.append(path_conflict_warning(conflicts, "its real place (else the first path met)"))


def path_conflict_warning(conflicts: Sequence[tuple[Sample, Sample]], order: str) -> str:
    """The loud warning for files reached by two paths that disagree on the label: (kept, dropped) pairs."""
    first, other = conflicts[0]
    return (
        f"{LABEL_CONFLICT}: {len(conflicts)} file(s) are reached by two paths with different labels, e.g. "
        f"{first.path} ({label_name(first.label)}) is also {other.path} ({label_name(other.label)}); "
        f"each is indexed once, with the label of {order}"
    )


def one_class_warnings(samples: Iterable[Sample]) -> list[str]:
    """Say which generators have only one class in a split (reals of the shared pool count for every one)."""
    counts = Counter((s.split, s.generator, s.label) for s in samples)
    splits = sorted({split for split, _, _ in counts})
    warnings = []
    for split in splits:
        where = f" in split {split!r}" if split else ""
        generators = sorted({g for s, g, _ in counts if s == split and g != REAL_POOL})
        pool = counts.get((split, REAL_POOL, REAL), 0)
        for generator in generators:
            reals, fakes = counts.get((split, generator, REAL), 0), counts.get((split, generator, FAKE), 0)
            if not fakes:
                warnings.append(f"generator {generator!r}{where} has {reals} real and no fake images")
            elif not reals and not pool:
                warnings.append(f"generator {generator!r}{where} has {fakes} fake and no real images")
        if pool and not generators:
            warnings.append(f"the real pool{where} has {pool} images but there are no fakes")
        fakes_of_pool = counts.get((split, REAL_POOL, FAKE), 0)
        if fakes_of_pool:
            warnings.append(f"{fakes_of_pool} fake images{where} are filed under the reserved generator {REAL_POOL!r}")
    return warnings


def first_label(labels: Mapping[str, int]) -> Callable[[tuple[str, ...]], int]:
    """A ``find_label`` for :func:`label_folders`: the position of the first part that is one of ``labels``."""

    def find(parts: tuple[str, ...]) -> int:
        for i, part in enumerate(parts):
            if part.lower() in labels:
                return i
        return -1

    return find


def strip_split(prefix: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The split named by the first folder of ``prefix`` (or "") and the folders after it."""
    if prefix and prefix[0].lower() in SPLITS:
        return SPLITS[prefix[0].lower()], prefix[1:]
    return "", prefix


def dataset_root(root: str | Path) -> Path:
    """``root`` as an absolute folder; :class:`DatasetError` when it is not one."""
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder")
    return path


# -- detection helpers ----------------------------------------------------------------------------------

_LABEL_NAMES = frozenset({*FORENSYNTHS_LABELS, *GENIMAGE_LABELS, *CIFAKE_LABELS})


def find_dir(root: Path, match: Callable[[tuple[str, ...]], bool], max_depth: int) -> bool:
    """Breadth-first over folder names only, down to ``max_depth``: is there a folder whose parts match?

    Label folders (0_real, nature, REAL...) are not entered: no layout keeps its structure inside them,
    and they hold the bulk of the files.
    """
    level: list[tuple[str, ...]] = [()]
    for _ in range(max_depth):
        following = []
        for parts in level:
            for name in child_dirs(root.joinpath(*parts)):
                child = (*parts, name)
                if match(child):
                    return True
                if name.lower() not in _LABEL_NAMES:
                    following.append(child)
        level = following
        if not level:
            break
    return False


def found_here_or_below(root: Path, here: Callable[[Path], bool], below: Callable[[Path, list[str]], bool]) -> bool:
    """Detection's common shape: is ``root`` a folder that ``here`` recognises, or whose child folder names
    ``below`` recognises?"""
    root = Path(root)
    return root.is_dir() and (here(root) or below(root, child_dirs(root)))


def label_folders(
    path: Path, builder: IndexBuilder, find_label: Callable[[tuple[str, ...]], int], expected: str
) -> Iterator[tuple[Folder, int]]:
    """Folders holding images under a label folder, with the label's position in ``parts`` (``find_label``
    says it, -1 for none; ``expected`` names the label folders in the reason an image outside them is skipped).

    Records non-image files, label folders (empty or not) and images outside any label folder on ``builder``
    as it goes, so each layout only says how a labelled folder maps to a generator and split.
    """
    for folder in walk_folders(path):
        parts = folder.parts
        i = find_label(parts)
        builder.skip_others(folder)
        if i >= 0 and i == len(parts) - 1:
            builder.saw_label_dir(parts)
        if not folder.images:
            continue
        if i < 0:
            builder.skip(folder, folder.images, f"image outside any {expected} folder")
            continue
        yield folder, i
