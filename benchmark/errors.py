"""The error browser's data: for each detector and test generator, its most confident mistakes.

Under a meaningful threshold (see :mod:`.selection`) a mistake is a real image scored at or above the row's
threshold (a false positive) or a fake scored below it (a false negative), most confident first: the highest
scored reals, the lowest scored fakes. Without one, the same ranking is shown as "most fake-looking reals" and
"most real-looking fakes". Images are named by the ids the score sidecars record (their paths); a thumbnail is
made when that file can still be read, and one image shared by several test sets gets one thumbnail.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .selection import threshold_is_meaningful
from .store import ResultStore

THUMBNAIL_PIXELS = 64


@dataclass(frozen=True)
class Mistake:
    """One image: its id (path), score and whether it is a false positive (a real) or false negative (a fake)."""

    image_id: str
    score: float
    false_positive: bool


def mistakes(row: Mapping[str, Any], store: ResultStore, per_kind: int = 4) -> tuple[list[Mistake], bool]:
    """The ``per_kind`` most confident false positives and false negatives of a row, and whether they are
    mistakes at the row's threshold (True) or just the extremes of the ranking (no meaningful threshold)."""
    sidecar = store.load_sidecar(str(row.get("row_id")))
    if sidecar is None:
        return [], False
    ids = sidecar.ids if sidecar.ids is not None else np.array([f"#{i}" for i in range(sidecar.labels.size)])
    finite = np.isfinite(sidecar.scores)
    meaningful = threshold_is_meaningful(row) and math.isfinite(float(row.get("threshold") or math.nan))
    threshold = float(row["threshold"]) if meaningful else math.nan
    reals = np.flatnonzero(finite & (sidecar.labels == 0))
    fakes = np.flatnonzero(finite & (sidecar.labels == 1))
    if meaningful:
        reals = reals[sidecar.scores[reals] >= threshold]
        fakes = fakes[sidecar.scores[fakes] < threshold]
    worst_reals = reals[np.argsort(-sidecar.scores[reals], kind="stable")][:per_kind]
    worst_fakes = fakes[np.argsort(sidecar.scores[fakes], kind="stable")][:per_kind]
    found = [Mistake(str(ids[i]), float(sidecar.scores[i]), True) for i in worst_reals]
    found += [Mistake(str(ids[i]), float(sidecar.scores[i]), False) for i in worst_fakes]
    return found, meaningful


def image_file(image_id: str, row: Mapping[str, Any]) -> Path | None:
    """The file an image id names, if it can be found: the id as a path, else relative to the dataset's
    source folder."""
    candidates = [Path(image_id)]
    source = (row.get("dataset") or {}).get("source")
    if source and not Path(image_id).is_absolute():
        candidates.append(Path(str(source)) / image_id)
    return next((path for path in candidates if path.is_file()), None)


class Thumbnails:
    """Thumbnails of image files, each made once and named by a CSS class whose background it is: an image
    shown many times (a real every test set shares) is stored once in the page (:meth:`style`)."""

    def __init__(self, pixels: int = THUMBNAIL_PIXELS) -> None:
        self.pixels = pixels
        self._classes: dict[Path, str | None] = {}
        self._uris: dict[str, str] = {}

    def css_class(self, path: Path | None) -> str | None:
        """The class showing ``path``'s thumbnail; None when the file is gone or unreadable."""
        if path is None:
            return None
        if path not in self._classes:
            uri = self._make(path)
            self._classes[path] = None if uri is None else f"t{len(self._uris)}"
            if uri is not None:
                self._uris[f"t{len(self._uris)}"] = uri
        return self._classes[path]

    def style(self) -> str:
        """The CSS rules of every thumbnail made so far."""
        return "\n".join(f".{name} {{ background-image: url({uri}); }}" for name, uri in self._uris.items())

    def _make(self, path: Path) -> str | None:
        from PIL import Image

        try:
            with Image.open(path) as image:
                picture = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        picture.thumbnail((self.pixels, self.pixels))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


__all__ = ["THUMBNAIL_PIXELS", "Mistake", "Thumbnails", "image_file", "mistakes"]
