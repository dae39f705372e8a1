"""Where dfzoo keeps things: cache, weights, runs. Every location can be moved by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """``$DFZOO_CACHE_DIR``, else the platform's user cache (``~/.cache/dfzoo`` on Linux)."""
    return Path(os.environ.get("DFZOO_CACHE_DIR") or user_cache_dir("dfzoo")).expanduser()


def weights_dir() -> Path:
    """``$DFZOO_WEIGHTS_DIR``, else ``<cache>/weights``: one sub-folder per weights name."""
    return Path(os.environ.get("DFZOO_WEIGHTS_DIR") or cache_dir() / "weights").expanduser()


def features_dir() -> Path:
    return cache_dir() / "features"


OFFLINE_VARIABLES = ("DFZOO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_variable() -> str:
    """The first of :data:`OFFLINE_VARIABLES` that is set (not empty, not ``0``), or ``""``."""
    return next((var for var in OFFLINE_VARIABLES if os.environ.get(var, "") not in ("", "0")), "")


def offline() -> bool:
    """True when downloads are off: ``DFZOO_OFFLINE``, ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set."""
    return bool(offline_variable())
