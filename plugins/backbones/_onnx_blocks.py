"""Intermediate blocks of an ONNX ViT graph as features: graph outputs added at the blocks' residual adds.

A pre-norm transformer block adds two branches to its residual stream, ``r = s + attn(norm(s))`` and
``s' = r + mlp(norm(r))``. :func:`block_outputs` finds that chain in any graph, without names: an ``Add`` of
two computed tensors where one is computed from the other is a residual add, and the longest run of them,
each adding onto the last one's output, is the stream; every second one ends a block. The chosen blocks'
tensors become extra graph outputs of an in-memory copy, pooled like the torch backbones' (:mod:`dfzoo.layers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from dfzoo.features import Backbone
from dfzoo.layers import SUFFIX, LayerSelection, LayersNotExposed, describe_selection, pooled_parts

from ._onnx_float import _Graph

if TYPE_CHECKING:
    from .extra import OnnxBackbone

PREFIX_TOKENS_KEY = "prefix_tokens"  # model metadata (``dfzoo.prefix_tokens``): leading class/register tokens


def block_outputs(model: onnx.ModelProto) -> list[str]:
    """The tensor that ends each transformer block of ``model``, in order (see the module doc)."""
    graph = _Graph(model.graph)
    skip_of: dict[str, str] = {}  # residual add output -> the stream tensor it adds onto
    for node in graph.graph.node:
        if node.op_type != "Add" or len(node.input) != 2 or any(graph.constant(i) is not None for i in node.input):
            continue
        a, b = node.input
        for skip, branch in ((a, b), (b, a)):
            if _computed_from(graph, branch, skip):
                skip_of[node.output[0]] = skip
                break
    following = {skip: out for out, skip in skip_of.items()}
    chains = []
    for start in set(skip_of.values()) - set(skip_of):
        chain, tensor = [], start
        while tensor in following:
            tensor = following[tensor]
            chain.append(tensor)
        chains.append(chain)
    stream = max(chains, key=len, default=[])
    if len(stream) < 2 or len(stream) % 2:
        raise LayersNotExposed(
            f"found no pre-norm transformer blocks in the graph (a residual stream of {len(stream)} adds; "
            "a ViT has two per block)"
        )
    return stream[1::2]


def _computed_from(graph: _Graph, tensor: str, source: str) -> bool:
    """Whether ``tensor`` is computed (directly or not) from ``source``."""
    seen: set[str] = set()
    pending = [tensor]
    while pending:
        name = pending.pop()
        if name == source:
            return True
        node = graph.producer.get(name)
        if name in seen or node is None:
            continue
        seen.add(name)
        pending.extend(i for i in node.input if i)
    return False


class OnnxLayerBackbone(Backbone):
    """An :class:`~dfzoo.plugins.backbones.extra.OnnxBackbone` giving the pooled tokens of chosen blocks.

    It runs a copy of the base's graph (float-activation rewrite included) with the blocks' tensors as
    outputs, batched or one image at a time exactly as the base does.
    """

    def __init__(self, base: OnnxBackbone, selection: LayerSelection) -> None:
        import onnxruntime as ort

        source = base.graph_source
        model = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
        ends = block_outputs(model)
        self.depth = len(ends)
        self.blocks = selection.blocks(self.depth)
        self.token = selection.token
        self.outputs = [ends[i] for i in self.blocks]
        kind = onnx.TensorProto.FLOAT16 if base.input_dtype == np.float16 else onnx.TensorProto.FLOAT
        model.graph.output.extend(onnx.helper.make_tensor_value_info(name, kind, None) for name in self.outputs)
        self.session = ort.InferenceSession(model.SerializeToString(), providers=base.providers)
        self.base = base
        self.prefix_tokens = int(base.metadata.get(PREFIX_TOKENS_KEY, 1))
        self.batch_axis, width = self._probe()
        block_dim = width * selection.tokens_per_block
        settings = {
            **{k: v for k, v in base.vector_settings().items() if k not in ("input", "onnx_output")},
            "layers": list(self.blocks),
            "token": self.token,
            "prefix_tokens": self.prefix_tokens,
        }
        name = f"{base.name}{SUFFIX}{selection.key(self.depth)}"
        super().__init__(name, base.normalisation, len(self.blocks) * block_dim, base.weights_identity, settings)
        self.layer_shape = (len(self.blocks), block_dim)

    def _probe(self) -> tuple[int, int]:
        """Which axis of a block output is the batch (a probe batch of one: the other axis is the tokens)."""
        size, count = self.base.normalisation.size, self.base.fixed_batch or 1
        out = self._tokens(np.zeros((count, 3, size, size), np.float32))[0]
        if out.ndim != 3:
            raise LayersNotExposed(f"{self.base.path}: block outputs have shape {out.shape}, not [B, L, D]")
        return (0 if out.shape[0] == count else 1), int(out.shape[-1])

    def _tokens(self, batch: np.ndarray) -> list[np.ndarray]:
        feed = {self.base.input_name: batch.astype(self.base.input_dtype)}
        return [np.asarray(out, np.float32) for out in self.session.run(self.outputs, feed)]

    def _pooled(self, chunk: np.ndarray) -> np.ndarray:
        fixed = self.base.fixed_batch
        padded = chunk if fixed is None else np.concatenate([chunk, np.repeat(chunk[-1:], fixed - len(chunk), 0)])
        parts: list[np.ndarray] = []
        for out in self._tokens(padded):
            tokens = out if self.batch_axis == 0 else out.transpose(1, 0, 2)
            parts.extend(pooled_parts(tokens[: len(chunk)], self.token, self.prefix_tokens))
        return np.concatenate(parts, axis=1)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        step = 1 if self.base.per_image else self.base.fixed_batch or max(len(batch), 1)
        rows = [self._pooled(batch[start : start + step]) for start in range(0, len(batch), step)]
        return np.concatenate(rows) if rows else np.empty((0, self.feature_dim), np.float32)

    def describe(self) -> dict[str, Any]:
        base = {k: v for k, v in self.base.describe().items() if k not in ("backbone", "onnx_output")}
        chosen = describe_selection(self.blocks, self.depth, self.token, self.layer_shape[1])
        return {"backbone": self.name, **base, **chosen, "onnx_outputs": self.outputs}
