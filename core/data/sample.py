"""What a dataset is to the rest of dfzoo: a list of labelled samples plus a fingerprint."""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

REAL, FAKE = 0, 1
REAL_POOL = "real"  # generator name of reals shared by every generator (the zoo, CIFAKE-like layouts)


@dataclass(frozen=True, eq=False)
class Sample:
    """One image with what we know about it.

    ``label`` is 0 for real and 1 for generated (-1 when unknown, e.g. for `dfzoo predict`). ``generator``
    groups samples for cross-generator protocols; reals that belong to no generator use ``"real"``.
    ``family`` is the generator family ("gan", "diffusion", "autoencoder"...; "real" for reals).
    ``split`` is the dataset's own split ("train", "val", "test") or "" when the dataset has none.
    ``image`` holds an in-memory image instead of a ``path`` (the Python API scores PIL images this way).
    """

    path: Path | None
    label: int
    generator: str = ""
    family: str = ""
    split: str = ""
    image: Image.Image | None = field(default=None, repr=False)

    @classmethod
    def from_image(cls, image: Image.Image, label: int = -1, **fields: Any) -> "Sample":
        return cls(path=None, label=label, image=image, **fields)

    @property
    def display_name(self) -> str:
        return str(self.path) if self.path is not None else f"<in-memory {id(self.image):x}>"


def content_id(sample: Sample) -> str:
    """sha256 of the file's bytes (or of the in-memory image's pixels): the feature-cache key for content."""
    if sample.path is None:
        if sample.image is None:
            raise ValueError("a Sample needs a path or an image")
        digest = hashlib.sha256(f"{sample.image.mode}{sample.image.size}".encode())
        digest.update(sample.image.tobytes())
        return digest.hexdigest()
    stat = os.stat(sample.path)
    return _file_digest(str(sample.path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1_000_000)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class DatasetIndex:
    """A dataset as read from disk: its samples, the layout that read it, and files it had to skip."""

    name: str
    layout: str
    root: Path | None
    samples: list[Sample]
    families: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    metadata: dict[str, Any] = field(default_factory=dict)

    def generators(self) -> list[str]:
        """Generators with fake samples, in sorted order."""
        return sorted({s.generator for s in self.samples if s.label == FAKE})

    def counts(self) -> dict[tuple[str, int], int]:
        return dict(Counter((s.generator, s.label) for s in self.samples))

    def fingerprint(self) -> str:
        """A hash of what the dataset holds (relative paths, sizes, labels, generators, splits).

        Cheap (no file is read) and stable across machines for the same files at any root.
        """
        digest = hashlib.sha256()
        rows = []
        prefix = os.path.join(str(self.root), "") if self.root else ""
        for s in self.samples:
            if s.path is None:
                rel, size = "<memory>", 0
            else:
                text = str(s.path)
                if prefix and text.startswith(prefix) and os.path.isabs(text):  # the common case, 10x faster
                    rel = text[len(prefix):]
                else:
                    rel = os.path.relpath(s.path, self.root) if self.root else text
                size = os.stat(s.path).st_size
            rows.append(f"{rel}\t{size}\t{s.label}\t{s.generator}\t{s.split}")
        for row in sorted(rows):
            digest.update(row.encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]
