"""Shared fixtures: an isolated cache per test, a tiny random backbone, and small generated datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

import dfzoo
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry

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


class TinyBackbonePlugin:
    """A test plugin: ``tiny_cnn`` is a randomly initialised timm ResNet at 32 px (seeded, so stable)."""

    @dfzoo.hookimpl
    def dfzoo_backbones(self):
        def factory(weights=None, device=None):
            import timm
            import torch

            from dfzoo.features import TorchBackbone
            from dfzoo.transforms import Normalisation

            torch.manual_seed(0)
            model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
            return TorchBackbone("tiny_cnn", model, Normalisation(size=32), model.num_features, None, device)

        yield dfzoo.BackboneSpec(
            name="tiny_cnn", summary="random-init timm resnet10t at 32 px (tests)", factory=factory, feature_dim=512
        )


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
