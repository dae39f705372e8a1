"""Dataset layouts on disk, and :func:`open_dataset`, which finds the right one for a folder or manifest.

Each layout is a pair of plain functions (``detect_*`` looks at a few folder names, ``load_*`` walks the
tree once with ``os.scandir``); :mod:`dfzoo.plugins.datasets.layouts` offers them as :class:`~dfzoo.DatasetSpec`
plugins, so a third-party layout is found the same way. Loading never decodes an image: bad images are
the decoder's business (:func:`dfzoo.data.decode.load_image`, ``dfzoo data inspect``).

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
from typing import TYPE_CHECKING, Any

from .duplicates import LABEL_CONFLICT, label_name
from .families import REAL_FAMILY, known_family
from .sample import FAKE, REAL, REAL_POOL, DatasetIndex, Sample
from .scan import (
    DUPLICATE_PATH,
    IMAGE_EXTENSIONS,
    Folder,
    child_dirs,
    child_path,
    first_places,
    gc_paused,
    is_image_name,
    scan_images,
    walk_folders,
)

if TYPE_CHECKING:
    from ..registry import Registry
    from ..spec import DatasetSpec

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


def _label_index(parts: tuple[str, ...], labels: Mapping[str, int]) -> int:
    for i, part in enumerate(parts):
        if part.lower() in labels:
            return i
    return -1


def _strip_split(prefix: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    if prefix and prefix[0].lower() in SPLITS:
        return SPLITS[prefix[0].lower()], prefix[1:]
    return "", prefix


def _root(root: str | Path) -> Path:
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


# -- ForenSynths (CNNDetection) -------------------------------------------------------------------------


def detect_forensynths(root: Path) -> bool:
    """A 0_real or 1_fake folder within four levels (root/[split/]gen/[class/]label)."""
    return Path(root).is_dir() and find_dir(Path(root), lambda p: p[-1].lower() in FORENSYNTHS_LABELS, 4)


def _label_folders(
    path: Path, builder: IndexBuilder, labels: Mapping[str, int], expected: str
) -> Iterator[tuple[Folder, int]]:
    """Folders holding images under a label folder, with the label's position in ``parts``.

    Records non-image files, label folders (empty or not) and images outside any label folder on ``builder``
    as it goes, so each layout only says how a labelled folder maps to a generator and split.
    """
    for folder in walk_folders(path):
        parts = folder.parts
        i = _label_index(parts, labels)
        builder.skip_others(folder)
        if i >= 0 and i == len(parts) - 1:
            builder.saw_label_dir(parts)
        if not folder.images:
            continue
        if i < 0:
            builder.skip(folder, folder.images, f"image outside any {expected} folder")
            continue
        yield folder, i


@gc_paused()
def load_forensynths(root: str | Path, families: Mapping[str, str] | None = None, generator: str = "") -> DatasetIndex:
    """``<root>/[<split>/]<gen>/[<class>/]{0_real,1_fake}/**`` (ForenSynths / CNNDetection, UniversalFakeDetect).

    Reals keep their folder's generator (they were drawn for it). ``families`` maps generator -> family
    (well-known names are filled in anyway). ``generator`` names one generator for the whole tree, making
    the first level classes (ProGAN's training set: ``<root>/<class>/{0_real,1_fake}``). A root that holds
    the label folders itself is one generator named after the root.
    """
    path = _root(root)
    builder = IndexBuilder(path, "forensynths", families)
    for folder, i in _label_folders(path, builder, FORENSYNTHS_LABELS, "0_real/1_fake"):
        parts = folder.parts
        split, prefix = _strip_split(parts[:i])
        name = generator or (prefix[0] if prefix else path.name)
        builder.add(folder, FORENSYNTHS_LABELS[parts[i].lower()], name, split, label_dir=parts[: i + 1])
    return builder.build()


# -- GenImage -------------------------------------------------------------------------------------------


def _genimage_label_index(parts: tuple[str, ...]) -> int:
    for i in range(1, len(parts)):
        if parts[i].lower() in GENIMAGE_LABELS and parts[i - 1].lower() in SPLITS:
            return i
    return -1


def detect_genimage(root: Path) -> bool:
    """A {train,val}/{nature,ai} pair within four levels (root/gen/[subset/]split/label)."""
    return Path(root).is_dir() and find_dir(
        Path(root), lambda p: len(p) >= 2 and p[-1].lower() in GENIMAGE_LABELS and p[-2].lower() in SPLITS, 4
    )


@gc_paused()
def load_genimage(root: str | Path, families: Mapping[str, str] | None = None) -> DatasetIndex:
    """``<root>/<gen>/[<subset>/]{train,val}/{nature,ai}/**`` (GenImage).

    The split is kept as the dataset names it: GenImage's "val" is its test set, and the harness tests on
    "val" when a dataset has no "test" split. Reals (ImageNet "nature" images) keep their folder's generator.
    """
    path = _root(root)
    builder = IndexBuilder(path, "genimage", families)
    for folder in walk_folders(path):
        parts = folder.parts
        i = _genimage_label_index(parts)
        builder.skip_others(folder)
        if i >= 0 and i == len(parts) - 1:
            builder.saw_label_dir(parts)
        if not folder.images:
            continue
        if i < 0:
            builder.skip(folder, folder.images, "image outside any {train,val}/{nature,ai} folder")
            continue
        prefix = parts[: i - 1]
        name = prefix[0] if prefix else path.name
        builder.add(
            folder, GENIMAGE_LABELS[parts[i].lower()], name, SPLITS[parts[i - 1].lower()], label_dir=parts[: i + 1]
        )
    return builder.build()


# -- CIFAKE ---------------------------------------------------------------------------------------------


CIFAKE_SIGNATURE = frozenset({"REAL", "FAKE"})  # CIFAKE's folder names, upper case: the cue it is detected by


def _cifake_base(folder: Path) -> bool:
    if set(child_dirs(folder)) & CIFAKE_SIGNATURE:
        return True
    return any(
        split.lower() in SPLITS and set(child_dirs(folder / split)) & CIFAKE_SIGNATURE for split in child_dirs(folder)
    )


def detect_cifake(root: Path) -> bool:
    """REAL/FAKE folders (CIFAKE's upper-case names) in the root or in its train/test folders, or the same one
    level down when the root holds a single folder (``<root>/cifake/REAL``). Other cases of real/fake are the
    binary layout's (``--layout cifake`` still reads them)."""
    root = Path(root)
    if not root.is_dir():
        return False
    if _cifake_base(root):
        return True
    children = child_dirs(root)
    return len(children) == 1 and _cifake_base(root / children[0])


CIFAKE_GENERATOR = "sd14"  # CIFAKE's fakes come from Stable Diffusion 1.4


@gc_paused()
def load_cifake(root: str | Path, generator: str = CIFAKE_GENERATOR, family: str = "diffusion") -> DatasetIndex:
    """``<root>/[<x>/][{train,test}/]{REAL,FAKE}/**`` (CIFAKE and other one-generator real/fake folders).

    Reals form the shared pool (generator "real", family "real"); fakes get ``generator`` and ``family``.
    Naming the fakes CIFAKE's generator is an assumption, recorded in ``metadata["assumed"]``.
    """
    path = _root(root)
    builder = IndexBuilder(path, "cifake", {generator: family})
    for folder, i in _label_folders(path, builder, CIFAKE_LABELS, "REAL/FAKE"):
        parts = folder.parts
        prefix = parts[:i]
        split = SPLITS.get(prefix[-1].lower(), "") if prefix else ""
        label = CIFAKE_LABELS[parts[i].lower()]
        builder.add(folder, label, REAL_POOL if label == REAL else generator, split, label_dir=parts[: i + 1])
    assumed = (
        [
            f"the fakes are CIFAKE's ({CIFAKE_GENERATOR!r}, Stable Diffusion 1.4); if this is not CIFAKE, "
            "use --layout binary or generator=NAME"
        ]
        if generator == CIFAKE_GENERATOR
        else []
    )
    return builder.build(generator=generator, assumed=assumed)


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


def load_with(spec: DatasetSpec, root: Path | None, params: Mapping[str, Any]) -> DatasetIndex:
    """Call ``spec.load`` with its default params under the given ones (unknown params are an error)."""
    unknown = sorted(set(params) - set(spec.params))
    if unknown and spec.params:
        raise DatasetError(
            f"dataset {spec.name!r} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters: {', '.join(sorted(spec.params))}"
        )
    index = spec.load(root, **{**spec.params, **params})
    index.metadata.setdefault("warnings", [])
    return index


def open_dataset(
    source: str | Path, layout: str | None = None, registry: Registry | None = None, **params: Any
) -> DatasetIndex:
    """A dataset by registered name (``"zoo"``), or a folder / CSV-JSONL manifest with its layout found.

    ``layout`` names a registered layout and skips detection; ``params`` go to the layout's ``load``.
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
            return load_with(named, None, params)
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
    index = load_with(spec, path, params)
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
