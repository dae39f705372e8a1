"""pytest plugin (entry point ``pytest11``): the ``dfzoo_check_detector`` fixture for plugin authors.

Loaded by pytest wherever dfzoo is installed; it imports nothing heavy until the fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def dfzoo_check_detector(tmp_path: Path) -> Callable[..., Any]:
    """``dfzoo_check_detector(name_or_spec, params=None, registry=None)``: run the detector contract kit
    (:func:`dfzoo.testing.check_detector`) in a fresh folder; fails the test listing every broken rule."""
    from dfzoo.testing import check_detector

    def check(name_or_spec: Any, **options: Any) -> Any:
        return check_detector(name_or_spec, tmp_path / "dfzoo-contract", **options)

    return check
