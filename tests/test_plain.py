"""JSON sanitising and slugs: one rule each, shared by saved detectors, rows and file names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dfzoo.plain import json_safe, slug


def test_json_safe_turns_every_odd_value_into_plain_json() -> None:
    value = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True)),
        "nan": math.nan,
        "inf": np.float64("inf"),
        "array": np.arange(3),
        "path": Path("a/b.png"),
        "other": {1, 2} - {1, 2} or object.__name__,
    }
    safe = json_safe(value)
    assert safe == {
        "1": [0.5, 3, True],
        "nan": None,
        "inf": None,
        "array": [0, 1, 2],
        "path": "a/b.png",
        "other": "object",
    }
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_slug_keeps_safe_characters_and_never_returns_empty() -> None:
    assert slug("zoo-gan / jpeg:quality=75") == "zoo-gan---jpeg-quality-75"
    assert slug("cifake_v1.2") == "cifake_v1.2"
    assert slug("///", fallback="dataset") == "dataset"
