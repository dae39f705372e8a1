"""Shared fixtures: an isolated cache per test, a tiny random backbone, small generated datasets and the tiny
benchmark of tests/kit.py. Helpers that are not fixtures live in tests/kit.py, tests/synthetic.py and
tests/tiny_models.py; test modules never import each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry
from tests.kit import HFEnergy, TinyBackbonePlugin, make_registry, write_tiny_dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache and weights folder, and never touches the network."""
    cache = tmp_path_factory.mktemp("dfzoo-cache")
    monkeypatch.setenv("DFZOO_CACHE_DIR", str(cache))
    monkeypatch.delenv("DFZOO_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("DFZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def registry() -> Registry:
    """A fresh registry with the built-in plugins plus the tiny test backbone, made current for the test."""
    reg = Registry(get_plugin_manager(autoload=False, extra_plugins=(TinyBackbonePlugin(),)))
    with use_registry(reg):
        yield reg


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """Two generators in the ForenSynths layout, 12 real + 12 fake 32 px PNGs each."""
    from tests.synthetic import write_folder_dataset

    return write_folder_dataset(tmp_path / "data")


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests that need it skip cleanly where it is absent."""
    if not (SHARED / "datasets").is_dir():
        pytest.skip("../shared/datasets is not present on this machine")
    return SHARED


# -- the tiny benchmark of tests/kit.py -------------------------------------------------------------------
@pytest.fixture
def bench_registry() -> Registry:
    """The tiny benchmark's registry (HFEnergy, tinyzoo, perturbations), with HFEnergy's counters reset."""
    HFEnergy.fit_calls.clear()
    HFEnergy.score_calls.clear()
    HFEnergy.interrupt_after = None
    registry = make_registry()
    with use_registry(registry):
        yield registry
    HFEnergy.interrupt_after = None


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """The tiny three-generator dataset of tests/kit.py, written under tmp_path."""
    return write_tiny_dataset(tmp_path / "tiny")
