"""What a dataset is to the rest of dfzoo: a list of labelled samples plus a fingerprint."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from ..transforms import Perturbation

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

    The pixels are read with :meth:`load`, the one image path of dfzoo: decoding (EXIF, odd modes, limits),
    then the perturbation of the *view* the harness made with :meth:`view`. A view hides ``path`` (detectors
    get images, not files) but remembers the file in ``origin`` for records, caches and error reports.
    """

    path: Path | None
    label: int
    generator: str = ""
    family: str = ""
    split: str = ""
    image: Image.Image | None = field(default=None, repr=False)
    origin: Path | None = field(default=None, repr=False)
    perturbation: Perturbation | None = field(default=None, repr=False)
    seed: int = 0

    @classmethod
    def from_image(cls, image: Image.Image, label: int = -1, **fields: Any) -> Sample:
        return cls(path=None, label=label, image=image, **fields)

    @property
    def file(self) -> Path | None:
        """The file the pixels come from, whether or not this view shows its ``path``."""
        return self.path if self.path is not None else self.origin

    @property
    def display_name(self) -> str:
        file = self.file
        return str(file) if file is not None else f"<in-memory {id(self.image):x}>"

    @property
    def view_key(self) -> str:
        """What this view changes about the stored pixels (``""`` for none): part of every cache key."""
        if self.perturbation is None or self.perturbation.is_identity:
            return ""
        return f"{self.perturbation.key}|seed={self.seed}"

    def load(self) -> Image.Image:
        """The image as 8-bit RGB with this view's perturbation applied; raises ``ImageDecodeError``."""
        from .decode import load_image

        file = self.file
        if self.image is None and file is None:
            raise ValueError("a Sample needs a path or an image")
        image = load_image(self.image if self.image is not None else file)
        if self.perturbation is not None and not self.perturbation.is_identity:
            image = self.perturbation(image, self.seed)
        return image

    def view(self, perturbation: Perturbation | None = None, seed: int = 0, *, hide_path: bool = True) -> Sample:
        """This sample as the harness hands it to a detector: ``perturbation`` applied by :meth:`load`, and
        the file path hidden unless ``hide_path=False`` (detectors declared to read files themselves)."""
        file = self.file
        return replace(self, path=None if hide_path else file, origin=file, perturbation=perturbation, seed=seed)


def perturbation_keys(samples: Sequence[Sample]) -> str:
    """The perturbation(s) the views in ``samples`` carry, e.g. ``"none"`` or ``"jpeg:quality=30"``."""
    keys = sorted({s.perturbation.key if s.perturbation is not None else "none" for s in samples})
    return ",".join(keys) or "none"


def content_id(sample: Sample) -> str:
    """sha256 of the file's bytes (or of the in-memory image's pixels), combined with the view's perturbation:
    the cache key of everything computed from what :meth:`Sample.load` returns."""
    base = stored_content_id(sample)
    view = sample.view_key
    return hashlib.sha256(f"{base}|{view}".encode()).hexdigest() if view else base


def stored_content_id(sample: Sample) -> str:
    """sha256 of the stored pixels' source (file bytes or in-memory image), ignoring any view."""
    if sample.image is not None:
        digest = hashlib.sha256(f"{sample.image.mode}{sample.image.size}".encode())
        digest.update(sample.image.tobytes())
        return digest.hexdigest()
    file = sample.file
    if file is None:
        raise ValueError("a Sample needs a path or an image")
    stat = os.stat(file)
    return _file_digest(str(file), stat.st_size, stat.st_mtime_ns)


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

        Cheap (no file is read) and stable across machines for the same files at any root. A dataset that
        states a checksum of its pixels (``metadata["content_sha256"]``, the generator zoo does) mixes it in,
        so two builds with equal file sizes but other pixels never share a fingerprint.
        """
        digest = hashlib.sha256()
        content = self.metadata.get("content_sha256")
        if content:
            digest.update(f"content_sha256\t{content}\n".encode())
        rows = []
        prefix = os.path.join(str(self.root), "") if self.root else ""
        for s in self.samples:
            if s.path is None:
                rel, size = "<memory>", 0
            else:
                text = str(s.path)
                if prefix and text.startswith(prefix) and os.path.isabs(text):  # the common case, 10x faster
                    rel = text[len(prefix) :]
                else:
                    rel = os.path.relpath(s.path, self.root) if self.root else text
                size = os.stat(s.path).st_size
            rows.append(f"{rel}\t{size}\t{s.label}\t{s.generator}\t{s.split}")
        for row in sorted(rows):
            digest.update(row.encode())
            digest.update(b"\n")
        return digest.hexdigest()[:16]
