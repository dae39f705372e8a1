"""Same bytes under several names: content duplicates in a dataset, and between a training and a test set.

Hashing reads every file, so it runs only where asked (``dfzoo data inspect``, the train/test overlap check
of :func:`dfzoo.benchmark.splits.split_dataset`) and only where it can matter: two files hold the same
bytes only if they have the same size, so a file whose size no other file in the set has is never read.
Hashes are :func:`dfzoo.data.sample.content_id` (sha256, cached by path, size and modification time), the
same ids the feature caches use.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .sample import FAKE, REAL, DatasetIndex, Sample, content_id

log = logging.getLogger(__name__)

LABEL_NAMES = {REAL: "real", FAKE: "fake", -1: "unlabelled"}
LABEL_CONFLICT = "LABEL CONFLICT"  # first words of every warning about one file labelled both real and fake
_UNREADABLE = "unreadable:"
_HASH_WORKERS = 4


def label_name(label: int) -> str:
    """ "real", "fake", "unlabelled", or the number for anything else."""
    return LABEL_NAMES.get(label, str(label))


def content_keys(samples: Sequence[Sample]) -> list[str]:
    """One key per sample, equal for two samples exactly when they hold the same bytes.

    The key is the sha256 for a file whose size another sample shares and for an in-memory image,
    ``"size:<n>"`` for a file of a size nobody else has (never read), and ``"unreadable:<path>"`` for a file
    that cannot be read (never a duplicate; the decoder reports it).
    """
    sizes: list[int | None] = []
    for sample in samples:
        if sample.path is None:
            sizes.append(None)
            continue
        try:
            sizes.append(os.stat(sample.path).st_size)
        except OSError:
            sizes.append(-1)
    shared = Counter(sizes)
    to_hash = [i for i, size in enumerate(sizes) if size is None or (size >= 0 and shared[size] > 1)]
    keys = [
        f"{_UNREADABLE}{s.display_name}" if size == -1 else f"size:{size}"
        for s, size in zip(samples, sizes, strict=True)
    ]
    with ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:  # reading and sha256 release the GIL
        for i, key in zip(to_hash, pool.map(_content_key, (samples[i] for i in to_hash)), strict=True):
            keys[i] = key
    return keys


def _content_key(sample: Sample) -> str:
    try:
        return content_id(sample)
    except OSError:
        return f"{_UNREADABLE}{sample.display_name}"


@dataclass(frozen=True)
class DuplicateGroup:
    """Samples holding the same bytes (two or more). ``conflict``: they are labelled both real and fake."""

    sha256: str
    samples: tuple[Sample, ...]

    @property
    def conflict(self) -> bool:
        return {REAL, FAKE} <= {s.label for s in self.samples}

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "paths": [s.display_name for s in self.samples],
            "labels": [label_name(s.label) for s in self.samples],
            "generators": [s.generator for s in self.samples],
            "conflict": self.conflict,
        }


def duplicate_groups(samples: Sequence[Sample]) -> list[DuplicateGroup]:
    """Groups of samples with the same bytes: label conflicts first, then in dataset order."""
    by_key: dict[str, list[Sample]] = {}
    for sample, key in zip(samples, content_keys(samples), strict=True):
        by_key.setdefault(key, []).append(sample)
    groups = [DuplicateGroup(key, tuple(found)) for key, found in by_key.items() if len(found) > 1]
    return sorted(groups, key=lambda group: not group.conflict)


def conflict_warning(groups: Sequence[DuplicateGroup]) -> str:
    """The loud warning for same bytes labelled real and fake ("" when there is none)."""
    conflicts = [group for group in groups if group.conflict]
    if not conflicts:
        return ""
    example = conflicts[0]
    real = next(s for s in example.samples if s.label == REAL)
    fake = next(s for s in example.samples if s.label == FAKE)
    return (
        f"{LABEL_CONFLICT}: {len(conflicts)} set(s) of identical files are labelled both real and fake, "
        f"e.g. {real.display_name} (real) = {fake.display_name} (fake)"
    )


def record_duplicate_groups(index: DatasetIndex, groups: Sequence[DuplicateGroup]) -> None:
    """Store ``groups`` in ``index.metadata["content_duplicates"]`` and warn about label conflicts there."""
    index.metadata["content_duplicates"] = [group.to_dict() for group in groups]
    warning = conflict_warning(groups)
    warnings = index.metadata.setdefault("warnings", [])
    if warning and warning not in warnings:
        warnings.append(warning)
        log.warning("%s: %s", index.name, warning)


def find_duplicates(index: DatasetIndex) -> list[DuplicateGroup]:
    """Hash what may be duplicated in ``index``, record the groups in its metadata, and return them."""
    groups = duplicate_groups(index.samples)
    record_duplicate_groups(index, groups)
    return groups


__all__ = [
    "LABEL_CONFLICT",
    "LABEL_NAMES",
    "DuplicateGroup",
    "conflict_warning",
    "content_keys",
    "duplicate_groups",
    "find_duplicates",
    "label_name",
    "record_duplicate_groups",
]
