"""Where the probe's features come from: one backbone or several concatenated, through the shared cache.

``"a+b"`` (or ``["a", "b"]``) names a concatenation: each part is extracted through
:func:`dfzoo.features.extract_features` with its own input convention and its own cache file, then the
vectors are joined side by side. So a grid that uses ``a``, ``b`` and ``a+b`` computes each image through
each backbone once. Built backbones are memoised (a few, least recently used first out) because a grid
builds hundreds of probes over the same two or three backbones.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.data.sample import Sample, perturbation_keys
from dfzoo.detector import RunContext
from dfzoo.features import Backbone, Features, extract_features
from dfzoo.layers import split_backbone_name
from dfzoo.registry import current_registry
from dfzoo.weights import resolve

SEPARATOR = "+"
MEMO_SIZE = 4
_memo: OrderedDict[tuple, tuple[Any, Backbone]] = OrderedDict()
_memo_lock = threading.Lock()


def parse_backbones(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"a+b"`` or ``["a", "b"]`` -> ``("a", "b")``; a plain name -> ``("a",)``."""
    names = value.split(SEPARATOR) if isinstance(value, str) else [str(v) for v in value]
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise ValueError(f"no backbone named in {value!r}")
    return tuple(names)


def backbone_label(value: str | Sequence[str]) -> str:
    return SEPARATOR.join(parse_backbones(value))


def get_backbone(
    name: str,
    *,
    pretrained: bool = True,
    weights_path: str | Path | None = None,
    device: Any = None,
    options: dict[str, Any] | None = None,
) -> Backbone:
    """A built backbone (memoised per registry spec, weights path, device and options).

    Like :func:`dfzoo.features.load_backbone`, plus ``options`` passed to factories that take them (the
    ONNX backbone's size/mean/std/output).
    """
    registry = current_registry()
    base, layers = split_backbone_name(name)  # "name:layers=5-11,token=cls": chosen blocks (dfzoo.layers)
    spec = registry.backbone(base)
    options = dict(options or {})
    key = (name, bool(pretrained), str(weights_path or ""), str(device), json.dumps(options, sort_keys=True))
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None and hit[0] is spec:
            _memo.move_to_end(key)
            return hit[1]
    weights = resolve(registry.weights(spec.weights), weights_path) if pretrained and spec.weights else None
    backbone = spec.factory(weights=weights, device=device, **options)
    backbone = backbone if layers is None else backbone.with_layers(layers)
    with _memo_lock:
        _memo[key] = (spec, backbone)
        _memo.move_to_end(key)
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return backbone


def clear_memo() -> None:
    with _memo_lock:
        _memo.clear()


@dataclass
class FeatureSet(Features):
    """Features of a sequence of samples; ``ok`` marks rows that every part could compute (finite)."""

    @property
    def ok(self) -> np.ndarray:
        mask = np.isfinite(self.vectors).all(axis=1) if self.vectors.size else np.ones(len(self.vectors), bool)
        mask[list(self.errors)] = False
        return mask


class BackboneSet:
    """One backbone, or several whose features are concatenated in the order given."""

    def __init__(
        self,
        spec: str | Sequence[str],
        *,
        pretrained: bool = True,
        weights_path: str | Path | None = None,
        options: dict[str, Any] | None = None,
        device: Any = None,
    ) -> None:
        self.names = parse_backbones(spec)
        if weights_path and len(self.names) > 1:
            raise ValueError("weights_path applies to a single backbone, not to a concatenation")
        self.backbones = [
            get_backbone(n, pretrained=pretrained, weights_path=weights_path, device=device, options=options)
            for n in self.names
        ]

    @property
    def label(self) -> str:
        return SEPARATOR.join(self.names)

    @property
    def feature_dim(self) -> int:
        return sum(b.feature_dim for b in self.backbones)

    @property
    def identities(self) -> list[str]:
        return [b.weights_identity for b in self.backbones]

    def describe(self) -> dict[str, Any]:
        parts = [b.describe() for b in self.backbones]
        if len(parts) == 1:
            return {**parts[0], "feature_dim": self.feature_dim}
        return {
            "backbone": self.label,
            "backbone_weights": SEPARATOR.join(self.identities),
            "input_size": [p.get("input_size") for p in parts],
            "feature_dim": self.feature_dim,
            "parts": parts,
        }

    def extract(self, samples: Sequence[Sample], context: RunContext, batch_size: int | None = None) -> FeatureSet:
        """Features through every part (each via the shared cache), joined side by side."""
        blocks, errors = [], {}
        for backbone in self.backbones:
            features = extract_features(
                samples,
                backbone,
                policy=context.preprocess,
                batch_size=batch_size or context.batch_size or 32,
                cache=context.cache,
                progress=context.progress,
                desc=f"features {backbone.name} [{perturbation_keys(samples)}]",
            )
            blocks.append(features.vectors)
            errors.update(features.errors)
        vectors = np.hstack(blocks) if blocks else np.empty((len(samples), 0), np.float32)
        return FeatureSet(vectors, errors)
