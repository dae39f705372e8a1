"""The folder layouts of the well-known datasets: ForenSynths (CNNDetection), GenImage and CIFAKE.

Each is a pair of plain functions: ``detect_*`` looks at a few folder names, ``load_*`` walks the tree once
(:func:`~dfzoo.data.layout_kit.label_folders`) and fills an :class:`~dfzoo.data.layout_kit.IndexBuilder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .layout_kit import (
    CIFAKE_LABELS,
    FORENSYNTHS_LABELS,
    GENIMAGE_LABELS,
    SPLITS,
    IndexBuilder,
    dataset_root,
    find_dir,
    first_label,
    found_here_or_below,
    label_folders,
    strip_split,
)
from .sample import REAL, REAL_POOL, DatasetIndex
from .scan import child_dirs, gc_paused

# -- ForenSynths (CNNDetection) -------------------------------------------------------------------------


def detect_forensynths(root: Path) -> bool:
    """A 0_real or 1_fake folder within four levels (root/[split/]gen/[class/]label)."""
    return Path(root).is_dir() and find_dir(Path(root), lambda p: p[-1].lower() in FORENSYNTHS_LABELS, 4)


@gc_paused()
def load_forensynths(root: str | Path, families: Mapping[str, str] | None = None, generator: str = "") -> DatasetIndex:
    """<root>/[{train,val,test}/]<gen>/[<class>/]{0_real,1_fake}/ (CNNDetection / UniversalFakeDetect); reals
    belong to their generator.

    Reals keep their folder's generator (they were drawn for it). ``families`` maps generator -> family
    (well-known names are filled in anyway). ``generator`` names one generator for the whole tree, making
    the first level classes (ProGAN's training set: ``<root>/<class>/{0_real,1_fake}``). A root that holds
    the label folders itself is one generator named after the root.
    """
    path = dataset_root(root)
    builder = IndexBuilder(path, "forensynths", families)
    for folder, i in label_folders(path, builder, first_label(FORENSYNTHS_LABELS), "0_real/1_fake"):
        parts = folder.parts
        split, prefix = strip_split(parts[:i])
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
    """<root>/<gen>/[<subset>/]{train,val}/{nature,ai}/ (GenImage); split kept as train/val.

    The split is kept as the dataset names it: GenImage's "val" is its test set, and the harness tests on
    "val" when a dataset has no "test" split. Reals (ImageNet "nature" images) keep their folder's generator.
    """
    path = dataset_root(root)
    builder = IndexBuilder(path, "genimage", families)
    for folder, i in label_folders(path, builder, _genimage_label_index, "{train,val}/{nature,ai}"):
        parts = folder.parts
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
    return found_here_or_below(
        root, _cifake_base, lambda root, children: len(children) == 1 and _cifake_base(root / children[0])
    )


CIFAKE_GENERATOR = "sd14"  # CIFAKE's fakes come from Stable Diffusion 1.4


@gc_paused()
def load_cifake(root: str | Path, generator: str = CIFAKE_GENERATOR, family: str = "diffusion") -> DatasetIndex:
    """<root>/[<one folder>/][{train,test}/]{REAL,FAKE}/ (CIFAKE: detected by the upper-case names; any case
    with --layout cifake); fakes named sd14 (CIFAKE's), reals shared.

    Also reads other one-generator real/fake folders.

    Reals form the shared pool (generator "real", family "real"); fakes get ``generator`` and ``family``.
    Naming the fakes CIFAKE's generator is an assumption, recorded in ``metadata["assumed"]``.
    """
    path = dataset_root(root)
    builder = IndexBuilder(path, "cifake", {generator: family})
    for folder, i in label_folders(path, builder, first_label(CIFAKE_LABELS), "REAL/FAKE"):
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
