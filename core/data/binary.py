"""The ``binary`` layout: one folder of reals and one of fakes, and nothing claimed about who made the fakes.

``<root>/[{train,val,test}/]{real,fake}/`` or ``{0_real,1_fake}`` (any case). The fakes are one generator named
after the root folder (``fake`` when the root is named like a split), or the ``generator`` parameter; reals
form the shared pool. Folders named exactly ``REAL`` and ``FAKE`` are CIFAKE's signature and left to the
``cifake`` layout. Every assumption the layout makes is recorded in ``metadata["assumed"]`` so ``dfzoo data
inspect`` can say it.
"""

from __future__ import annotations

from pathlib import Path

from .folder_layouts import CIFAKE_SIGNATURE
from .layout_kit import SPLITS, IndexBuilder, dataset_root, first_label, found_here_or_below, label_folders
from .sample import FAKE, REAL, REAL_POOL, DatasetIndex
from .scan import child_dirs, gc_paused

VOCABULARIES = ({"real": REAL, "fake": FAKE}, {"0_real": REAL, "1_fake": FAKE})
LABELS = {name: label for vocabulary in VOCABULARIES for name, label in vocabulary.items()}
DEFAULT_GENERATOR = "fake"


def _holds_both(folder: Path) -> bool:
    names = child_dirs(folder)
    if set(names) >= CIFAKE_SIGNATURE:
        return False
    lowered = {n.lower() for n in names}
    return any(set(vocabulary) <= lowered for vocabulary in VOCABULARIES)


def _splits_hold_both(root: Path, children: list[str]) -> bool:
    splits = [c for c in children if c.lower() in SPLITS]
    return bool(splits) and len(splits) == len(children) and all(_holds_both(root / c) for c in splits)


def detect_binary(root: Path) -> bool:
    """A real and a fake folder in the root, or in each of its split folders (train/val/test)."""
    return found_here_or_below(root, _holds_both, _splits_hold_both)


def generator_name(root: Path) -> str:
    """The fakes' generator: the root folder's name, or ``fake`` where that name says nothing (a split name)."""
    name = root.name.strip()
    return DEFAULT_GENERATOR if not name or name.lower() in SPLITS else name


@gc_paused()
def load_binary(root: str | Path, generator: str = "", family: str = "") -> DatasetIndex:
    """<root>/[{train,val,test}/]{real,fake}/ or {0_real,1_fake}/ (any case): one real and one fake folder; the
    fakes are one generator named after the root folder (or generator=NAME).

    See the module docstring; ``generator`` / ``family`` name the fakes.
    """
    path = dataset_root(root)
    name = generator or generator_name(path)
    builder = IndexBuilder(path, "binary", {name: family} if family else None)
    for folder, i in label_folders(path, builder, first_label(LABELS), "real/fake (or 0_real/1_fake)"):
        parts = folder.parts
        split = SPLITS.get(parts[i - 1].lower(), "") if i > 0 else ""
        label = LABELS[parts[i].lower()]
        builder.add(folder, label, REAL_POOL if label == REAL else name, split, label_dir=parts[: i + 1])
    assumed = []
    if not generator:
        assumed.append(
            f"all fakes are one generator, named {name!r} after the folder (the dataset parameter "
            "generator=NAME names it; a folder per generator with 0_real/1_fake inside is the forensynths layout)"
        )
    return builder.build(assumed=assumed)


__all__ = ["detect_binary", "generator_name", "load_binary"]
