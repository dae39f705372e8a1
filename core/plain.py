"""Plain values for files and names: the one home of JSON sanitising and of filesystem-safe slugs.

Saved detectors, result rows and score sidecars all go through :func:`json_safe`, so they agree on what a NaN,
a numpy scalar or a path becomes; every file or anchor name derived from user text goes through :func:`slug`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SLUG_KEEP = "-_."


def json_safe(value: Any) -> Any:
    """A JSON-safe copy: NaN/inf -> None, numpy scalars/arrays -> Python, tuples -> lists, other objects -> str."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy here
    if callable(tolist) and type(value).__module__ == "numpy":
        return json_safe(tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def slug(text: str, fallback: str = "item", replacement: str = "-") -> str:
    """``text`` with every character but letters, digits and ``-_.`` turned into ``replacement``, trimmed of it."""
    cleaned = "".join(c if c.isalnum() or c in SLUG_KEEP else replacement for c in str(text)).strip(replacement)
    return cleaned or fallback
