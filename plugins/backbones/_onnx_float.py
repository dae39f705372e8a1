"""Float activations for dynamically quantised ONNX graphs, so a feature is a function of the image alone.

onnxruntime's ``quantize_dynamic`` turns ``y = x @ W`` into ``DynamicQuantizeLinear(x)`` -> ``MatMulInteger``
-> ``Cast`` -> ``Mul(x_scale * w_scale)``. ``DynamicQuantizeLinear`` takes its scale from the min and max of
the whole tensor, batch included: an image's features then change with its batch-mates, and the integer
kernels differ between CPUs. :func:`float_activations` rewrites each such pattern (and its ``ConvInteger``
twin) into a float ``MatMul``/``Conv`` on the un-quantised input with the weights dequantised once,
``W = (Wq - Wz) * Ws``: the int8-rounded weights stay, the per-batch activation rounding goes. The rewrite
works on the in-memory model and never touches the file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

REWRITE_TAG = "dfzoo-float-activations-v1"
# ops whose output depends on the whole input tensor's range, batch included
PER_BATCH_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"})
INTEGER_OPS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv"}
FLOAT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}
CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


@dataclass(frozen=True)
class FloatRewrite:
    """The rewritten model, how many integer ops became float ones, and the per-batch ops left (if any)."""

    model: onnx.ModelProto
    rewritten: int
    remaining: tuple[str, ...]

    @property
    def batch_invariant(self) -> bool:
        return not self.remaining


def per_batch_ops(model: onnx.ModelProto) -> tuple[str, ...]:
    """Names (``op_type:name``) of the nodes whose output depends on the batch, subgraphs included."""
    return tuple(
        f"{node.op_type}:{node.name or '?'}" for node in _all_nodes(model.graph) if node.op_type in PER_BATCH_OPS
    )


def float_activations(model: onnx.ModelProto) -> FloatRewrite:
    """Rewrite every dynamically quantised MatMul/Conv of ``model`` to float activations.

    A model without dynamic quantisation is returned as it is (the same object). Otherwise a copy is
    rewritten; patterns that do not match exactly (non-constant weights, a scale that is not per tensor or
    per output channel, outputs used elsewhere) are left alone and their ops listed in ``remaining``.
    """
    if not per_batch_ops(model):
        return FloatRewrite(model, 0, ())
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    rewritten = _Graph(copy.graph).rewrite()
    return FloatRewrite(copy, rewritten, per_batch_ops(copy))


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _all_nodes(sub)


def _inputs(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every tensor name that ``nodes`` read, including from inside their subgraphs."""
    names: set[str] = set()
    for node in nodes:
        names.update(node.input)
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                names |= _inputs(sub.node)
    return names


@dataclass
class _Match:
    """One quantised op: the nodes it replaces, the float node that replaces it, its dequantised weight."""

    replaced: list[onnx.NodeProto]  # integer op, Cast, output Mul
    maybe_dead: list[onnx.NodeProto]  # DynamicQuantizeLinear, scale Mul, Constant weights: removed if unused
    node: onnx.NodeProto
    weight: onnx.TensorProto
    sources: list[str]  # the quantised weight's tensors, dropped when nothing uses them


class _Graph:
    """Producers, consumers and constants of one graph, and the rewrite on top of them."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.producer = {output: node for node in graph.node for output in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.outputs = {output.name for output in graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
        return None

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        if name in self.outputs or len(users) != 1 or users[0].op_type != op_type:
            return None
        return users[0]

    def rewrite(self) -> int:
        matches = [
            m
            for node in list(self.graph.node)
            if node.op_type in INTEGER_OPS
            for m in [self.match(node)]
            if m is not None
        ]
        if not matches:
            return 0
        replaced = {id(node) for m in matches for node in m.replaced}
        by_output = {m.replaced[-1].output[0]: m for m in matches}
        nodes = []
        for node in self.graph.node:
            if id(node) not in replaced:
                nodes.append(node)
            elif node.output[0] in by_output:  # the output Mul: the float op takes its place
                nodes.append(by_output[node.output[0]].node)
        nodes = self.without_dead(nodes, [n for m in matches for n in m.maybe_dead])
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        self.graph.initializer.extend({m.weight.name: m.weight for m in matches}.values())
        self.drop_unused({name for m in matches for name in m.sources}, nodes)
        return len(matches)

    def match(self, integer: onnx.NodeProto) -> _Match | None:
        """The DynamicQuantizeLinear -> integer op -> Cast -> Mul(x_scale * w_scale) around ``integer``."""
        inputs = list(integer.input) + [""] * (4 - len(integer.input))
        quantised_x, quantised_w, x_zero, w_zero = inputs[:4]
        quantise = self.producer.get(quantised_x)
        if (
            quantise is None
            or quantise.op_type != "DynamicQuantizeLinear"
            or quantise.output[0] != quantised_x
            or x_zero != quantise.output[2]
        ):
            return None
        weight = self.constant(quantised_w)
        if weight is None or weight.dtype not in (np.int8, np.uint8):
            return None
        zero = np.zeros((), weight.dtype) if not w_zero else self.constant(w_zero)
        cast = self.only_consumer(integer.output[0], "Cast")
        if zero is None or cast is None:
            return None
        to = next((a.i for a in cast.attribute if a.name == "to"), None)
        mul = self.only_consumer(cast.output[0], "Mul")
        if to not in FLOAT_TYPES or mul is None:
            return None
        scales = [name for name in mul.input if name != cast.output[0]]
        scale_mul = self.producer.get(scales[0]) if len(scales) == 1 else None
        if scale_mul is None or scale_mul.op_type != "Mul" or quantise.output[1] not in scale_mul.input:
            return None
        w_scales = [name for name in scale_mul.input if name != quantise.output[1]]
        scale = self.constant(w_scales[0]) if len(w_scales) == 1 else None
        if scale is None:
            return None
        dequantised = _dequantise(integer.op_type, weight, zero, scale)
        if dequantised is None:
            return None
        name = f"{quantised_w}_dequantised"
        tensor = numpy_helper.from_array(dequantised.astype(FLOAT_TYPES[to]), name)
        attributes = {
            a.name: onnx.helper.get_attribute_value(a) for a in integer.attribute if a.name in CONV_ATTRIBUTES
        }
        node = onnx.helper.make_node(
            INTEGER_OPS[integer.op_type],
            [quantise.input[0], name],
            [mul.output[0]],
            name=f"{integer.name or mul.output[0]}_float",
            **attributes,
        )
        constants = [self.producer[n] for n in (quantised_w, w_zero, w_scales[0]) if n in self.producer]
        return _Match(
            [integer, cast, mul],
            [quantise, scale_mul, *constants],
            node,
            tensor,
            [n for n in (quantised_w, w_zero, w_scales[0]) if n],
        )

    def without_dead(self, nodes: list[onnx.NodeProto], candidates: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """``nodes`` minus the candidates nothing uses any more (repeated: removing one can free another)."""
        pending = {id(node) for node in candidates}
        while True:
            used = _inputs(nodes) | self.outputs
            dead = {id(node) for node in nodes if id(node) in pending and not used.intersection(node.output)}
            if not dead:
                return nodes
            nodes = [node for node in nodes if id(node) not in dead]

    def drop_unused(self, names: set[str], nodes: list[onnx.NodeProto]) -> None:
        """Remove the initializers among ``names`` that no remaining node (or subgraph) reads."""
        used = _inputs(self.graph.node) | self.outputs
        keep = [tensor for tensor in self.graph.initializer if tensor.name not in names or tensor.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)
        produced = {name for node in nodes for name in node.output}
        stale = {name for node in self.producer.values() for name in node.output} - produced
        info = [value for value in self.graph.value_info if value.name not in stale]
        del self.graph.value_info[:]
        self.graph.value_info.extend(info)


def _dequantise(op_type: str, weight: np.ndarray, zero: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """``(Wq - Wz) * Ws`` in float64, or ``None`` unless zero point and scale are per tensor or per output
    channel (the last axis of a MatMul weight, the first of a Conv weight) exactly as the graph applies them."""
    matmul = op_type == "MatMulInteger"
    channels = weight.shape[-1] if matmul else weight.shape[0]
    # the integer op reads a per-channel zero point as [N] (MatMul) or [M] (Conv); the output Mul broadcasts
    # the scale against [..., N] or [B, M, H, W], so a per-channel Conv scale has shape [M, 1, 1]
    scale_tail = (channels,) if matmul else (channels,) + (1,) * (weight.ndim - 2)
    if zero.size != 1 and zero.shape != (channels,):
        return None
    if scale.size != 1 and (scale.size != channels or scale.shape[-len(scale_tail) :] != scale_tail):
        return None
    per_channel = (-1,) if matmul else (-1,) + (1,) * (weight.ndim - 1)
    zero, scale = (a.reshape(per_channel if a.size != 1 else ()).astype(np.float64) for a in (zero, scale))
    return (weight.astype(np.float64) - zero) * scale
