"""Frozen backbones and feature extraction with a shared on-disk cache.

The cache is keyed by backbone, weights identity, preprocessing policy, perturbation and image content
(sha256 of the file), so every detector and every run that needs the same features computes them once.
Batching and the cache itself are the shared engine of :mod:`dfzoo.batching` and :mod:`dfzoo.cache`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .batching import Batch as Batch  # re-exported: batching and the cache engine lived here before
from .batching import iter_batches as iter_batches
from .cache import FeatureCache as FeatureCache
from .cache import Features as Features
from .cache import compute_cached
from .cache import content_ids as content_ids
from .data.sample import Sample
from .transforms import Normalisation, PreprocessPolicy

if TYPE_CHECKING:
    from .layers import LayerSelection
    from .registry import Registry

log = logging.getLogger(__name__)


class Backbone:
    """A frozen feature extractor that travels with its own input convention (``normalisation``).

    ``embed(batch)`` maps a float32 array [B, 3, S, S] (already normalised) to features [B, D], each row a
    function of its image alone (never of its batch-mates). ``weights_identity`` names the weights
    (``name@sha256:...``) or says ``random-init:<hash>``; ``settings`` are the build choices besides the
    weights that change the vectors (architecture options, pooling, output), part of :attr:`cache_identity`.
    """

    def __init__(
        self,
        name: str,
        normalisation: Normalisation,
        feature_dim: int,
        weights_identity: str,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.normalisation = normalisation
        self.feature_dim = feature_dim
        self.weights_identity = weights_identity
        self.settings = dict(settings or {})

    @property
    def pretrained(self) -> bool:
        return not self.weights_identity.startswith("random-init")

    def vector_settings(self) -> dict[str, Any]:
        """Everything besides name and weights that changes the vectors: the input convention and
        ``settings``; subclasses add what they do at run time (precision, graph rewrites, per-image runs)."""
        n = self.normalisation
        return {"input": [n.size, n.interpolation, list(n.mean), list(n.std)], **self.settings}

    @property
    def cache_identity(self) -> str:
        """The backbone's part of the feature cache key: two backbones with equal identities give equal vectors."""
        settings = json.dumps(self.vector_settings(), sort_keys=True, default=str)
        return "|".join([self.name, self.weights_identity, settings])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def with_layers(self, selection: LayerSelection) -> Backbone:
        """This backbone giving the pooled tokens of intermediate blocks instead (see :mod:`dfzoo.layers`)."""
        from .layers import LayersNotExposed

        raise LayersNotExposed(f"backbone {self.name!r} ({type(self).__name__}) does not expose its blocks")

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.name, "backbone_weights": self.weights_identity, "input_size": self.normalisation.size}


class TorchBackbone(Backbone):
    """A torch module as a backbone: eval mode, no gradients, mixed precision on CUDA."""

    def __init__(
        self,
        name: str,
        module: Any,
        normalisation: Normalisation,
        feature_dim: int,
        weights_identity: str | None = None,
        device: Any = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        import torch

        from .device import pick_device, place_module

        self.device = pick_device(device)
        placed, self.channels_last = place_module(module.eval(), self.device)  # channels-last: CUDA convnets
        self.module: Any = placed  # any torch module: callers reach into its submodules by name
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        identity = weights_identity or f"random-init:{module_digest(self.module)}"
        super().__init__(name, normalisation, feature_dim, identity, settings)
        self._torch = torch

    def vector_settings(self) -> dict[str, Any]:
        from .device import precision

        layout = {"memory_format": "channels_last"} if self.channels_last else {}
        return {**super().vector_settings(), "precision": precision(self.device), **layout}  # see embed()

    def forward(self, batch: Any) -> Any:
        """Tensor in, tensor out (for detectors that fine-tune on top or need gradients)."""
        return self.module(batch)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        from .device import autocast, to_device

        torch = self._torch
        with torch.inference_mode(), autocast(self.device):
            out = self.module(to_device(batch, self.device, self.channels_last))
        return out.float().flatten(1).cpu().numpy()

    def with_layers(self, selection: LayerSelection) -> Backbone:
        from .layers import TorchLayerBackbone

        return TorchLayerBackbone(self, selection)


def module_digest(module: Any) -> str:
    """A short hash of a module's parameters and buffers: identifies a random initialisation honestly."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_backbone(
    name: str,
    *,
    pretrained: bool = True,
    weights_path: str | Path | None = None,
    device: Any = None,
    registry: Registry | None = None,
    layers: str | Sequence[int] | None = None,
    token: str | None = None,
) -> Backbone:
    """Build a backbone by name with resolved weights (or randomly initialised when ``pretrained=False``).

    ``layers`` / ``token`` (or a name suffix, ``"name:layers=5-11,token=cls"``) make it give the pooled tokens
    of intermediate blocks (:mod:`dfzoo.layers`).
    """
    from .layers import selection_from, split_backbone_name
    from .registry import current_registry
    from .weights import resolve

    registry = registry or current_registry()
    base, suffix = split_backbone_name(name)
    selection = selection_from(suffix, layers, token)
    spec = registry.backbone(base)
    weights = None
    if pretrained and spec.weights:
        weights = resolve(registry.weights(spec.weights), weights_path)
    backbone = spec.factory(weights=weights, device=device)
    return backbone if selection is None else backbone.with_layers(selection)


# -- features through the cache engine -------------------------------------------------------------------
def prepare_image(sample: Sample, policy: PreprocessPolicy, normalisation: Normalisation) -> np.ndarray:
    """Decode (with the sample view's perturbation) and preprocess one sample to a normalised CHW array."""
    return policy.apply(sample.load(), normalisation)


def cache_key(backbone: Backbone, policy: PreprocessPolicy) -> str:
    """The cache file of a (backbone, preprocessing) pair; perturbations live in each sample's content id.

    The backbone part is :attr:`Backbone.cache_identity` (weights, input convention, build and run settings).
    """
    return "|".join([backbone.cache_identity, policy.key])


def extract_features(
    samples: Sequence[Sample],
    backbone: Backbone,
    *,
    policy: PreprocessPolicy = PreprocessPolicy(),
    batch_size: int = 64,
    cache: bool | FeatureCache = True,
    progress: bool = True,
    desc: str | None = None,
) -> Features:
    """Features of ``samples`` through ``backbone``: cached ones are read, the rest computed and stored.

    Each sample's view (the harness's perturbation) is applied by :meth:`Sample.load` and is part of its
    content id, so one cache file per (backbone, preprocessing) serves every perturbation. The work runs in
    :func:`dfzoo.cache.compute_cached`, the engine the reconstruction detectors share.
    """
    return compute_cached(
        samples,
        key=cache_key(backbone, policy),
        dim=backbone.feature_dim,
        prepare=partial(prepare_image, policy=policy, normalisation=backbone.normalisation),
        compute=backbone.embed,
        batch_size=batch_size,
        cache=cache,
        device=getattr(backbone, "device", None),
        progress=progress,
        desc=desc or f"features {backbone.name}",
    )
