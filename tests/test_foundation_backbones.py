"""Foundation-model towers through timm names: registered, honest about missing weights offline, and built as
the real architectures (random-initialised here: the weights are not on this machine)."""

from __future__ import annotations

import numpy as np
import pytest

from dfzoo.plugins.backbones.foundation import TOWERS
from dfzoo.registry import Registry
from dfzoo.weights import WeightsNotFound, resolve


def test_every_tower_is_a_backbone_with_its_timm_weights(registry: Registry) -> None:
    names = set(registry.names("backbone"))
    for tower in TOWERS:
        assert tower.name in names
        spec = registry.backbone(tower.name)
        weights = registry.weights(spec.weights)
        assert weights.source == f"timm/{tower.model}" and spec.feature_dim == tower.dim
        with pytest.raises(WeightsNotFound):  # offline here: listed as missing, never random
            resolve(weights)


@pytest.mark.parametrize(
    "name",
    [
        "dinov2_vitb14",
        pytest.param("siglip2_vitb16", marks=pytest.mark.slow),
        pytest.param("pe_core_vitb16", marks=pytest.mark.slow),
        pytest.param("metaclip_vitb16", marks=pytest.mark.slow),
    ],
)
def test_tower_builds_at_its_input_size_and_exposes_blocks(name: str, registry: Registry) -> None:
    from dfzoo.features import load_backbone

    tower = next(t for t in TOWERS if t.name == name)
    backbone = registry.backbone(name).factory(weights=None, device="cpu")
    size = backbone.normalisation.size
    assert size == (tower.input_size or 224)
    batch = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    assert backbone.embed(batch).shape == (2, tower.dim)
    layered = load_backbone(f"{name}:layers=2,5", pretrained=False, device="cpu", registry=registry)
    assert layered.embed(batch).shape == (2, 2 * tower.dim)
