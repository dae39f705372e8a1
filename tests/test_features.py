"""Feature extraction: cache keyed by backbone, weights, preprocessing, perturbation and content."""

from __future__ import annotations

import numpy as np
import pytest

from dfzoo.data.sample import Sample
from dfzoo.features import FeatureCache, cache_key, extract_features, load_backbone
from dfzoo.transforms import PreprocessPolicy, make_perturbation


@pytest.fixture
def samples(folder_dataset):
    return [Sample(path=p, label=0) for p in sorted(folder_dataset.rglob("*.png"))[:10]]


def test_cold_then_warm_reads_the_cache(registry, samples):
    backbone = load_backbone("tiny_cnn")
    cold = extract_features(samples, backbone, progress=False)
    warm = extract_features(samples, backbone, progress=False)
    assert cold.cached == 0 and warm.cached == len(samples)
    np.testing.assert_array_equal(cold.vectors, warm.vectors)
    assert np.isfinite(cold.vectors).all()


def test_cache_separates_preprocessing_and_perturbation(registry, samples):
    backbone = load_backbone("tiny_cnn")
    assert cache_key(backbone, PreprocessPolicy()) != cache_key(backbone, PreprocessPolicy("center_crop"))
    plain = extract_features(samples, backbone, progress=False)
    views = [s.view(make_perturbation("blur:sigma=2")) for s in samples]
    blurred = extract_features(views, backbone, progress=False)
    assert blurred.cached == 0  # a perturbed view has its own content id
    assert not np.allclose(plain.vectors, blurred.vectors)
    assert extract_features(views, backbone, progress=False).cached == len(samples)
    reseeded = [s.view(make_perturbation("blur:sigma=2"), seed=1) for s in samples]
    assert extract_features(reseeded, backbone, progress=False).cached == 0


def test_same_content_at_another_path_is_a_cache_hit(registry, samples, tmp_path):
    backbone = load_backbone("tiny_cnn")
    extract_features(samples[:1], backbone, progress=False)
    copy = tmp_path / "copy.png"
    copy.write_bytes(samples[0].path.read_bytes())
    assert extract_features([Sample(path=copy, label=0)], backbone, progress=False).cached == 1


def test_undecodable_images_are_nan_with_a_reason(registry, samples, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    missing = Sample(path=tmp_path / "gone.png", label=0)
    result = extract_features(
        [samples[0], Sample(path=bad, label=1), missing], load_backbone("tiny_cnn"), progress=False
    )
    assert result.ok.tolist() == [True, False, False]
    assert np.isnan(result.vectors[1]).all()
    assert "not an image" in result.errors[1]


def test_cache_survives_reopening(tmp_path):
    cache = FeatureCache("k", root=tmp_path)
    cache.put_many({"a": np.arange(3, dtype=np.float32)})
    cache.close()
    again = FeatureCache("k", root=tmp_path)
    np.testing.assert_array_equal(again.get_many(["a", "b"])["a"], [0, 1, 2])
    assert len(again) == 1


def test_random_backbone_identity_is_honest(registry):
    backbone = load_backbone("tiny_cnn")
    assert not backbone.pretrained
    assert backbone.weights_identity.startswith("random-init:")


def test_features_do_not_depend_on_the_batch_size(registry, samples):
    backbone = load_backbone("tiny_cnn")
    one = extract_features(samples, backbone, batch_size=1, cache=False, progress=False)
    eight = extract_features(samples, backbone, batch_size=8, cache=False, progress=False)
    np.testing.assert_allclose(one.vectors, eight.vectors, rtol=1e-5, atol=1e-6)


def test_cache_key_holds_everything_that_changes_the_vectors(registry, tmp_path):
    """Input convention, build settings, run precision and, for ONNX, the graph rewrite and execution mode."""
    from dfzoo.plugins.backbones.extra import onnx_backbone
    from tests.tiny_models import export, quantise, token_encoder

    policy = PreprocessPolicy()
    tiny = load_backbone("tiny_cnn")
    assert '"precision": "float32"' in cache_key(tiny, policy)
    base = cache_key(tiny, policy)
    tiny.settings["global_pool"] = "max"
    assert cache_key(tiny, policy) != base

    path = export(token_encoder(), tmp_path / "enc.onnx", size=16, any_size=True)
    small, large = onnx_backbone(path, size=16), onnx_backbone(path, size=32)
    assert small.weights_identity == large.weights_identity and cache_key(small, policy) != cache_key(large, policy)
    assert cache_key(small, policy) != cache_key(onnx_backbone(path, size=16, mean=(0.5, 0.5, 0.5)), policy)
    quantised = onnx_backbone(quantise(path, "QInt8"), size=16)
    assert "dfzoo-float-activations-v1" in cache_key(quantised, policy) and '"execution": "batched"' in cache_key(
        quantised, policy
    )
