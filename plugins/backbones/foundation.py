"""Foundation-model image towers through timm names: DINOv2, SigLIP 2, Perception Encoder and MetaCLIP.

Their frozen features (final or intermediate blocks: ``name:layers=5-11``) are what recent detection work
probes. Weights resolve from the Hugging Face cache (``timm/<model>``) or a download where the network allows;
offline they are listed as missing, never replaced by random weights. Features are timm's pooled output
without a classifier (``num_classes=0``): the CLS token (DINOv2, MetaCLIP before its projection), the
attention-pool output (SigLIP 2) or PE's pooled token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dfzoo import hookimpl
from dfzoo.backbones import timm_backbone, timm_weights
from dfzoo.features import TorchBackbone
from dfzoo.weights import ResolvedWeights

from ._specs import backbone


@dataclass(frozen=True)
class Tower:
    """One registered tower: backbone name, timm model (``arch.tag``), summary, licence, feature dim."""

    name: str
    model: str
    summary: str
    licence: str
    dim: int
    input_size: int | None = None  # run at this size (positions interpolated) instead of timm's default
    tags: tuple[str, ...] = ()

    @property
    def weights_name(self) -> str:
        return f"{self.name}_timm"

    def build(self, weights: ResolvedWeights | None, device: Any = None) -> TorchBackbone:
        arch = self.model.split(".")[0]
        extra: dict[str, Any] = {"dynamic_img_size": True} if self.input_size else {}
        backbone = timm_backbone(self.name, arch, weights, device, None, **extra)
        if self.input_size:
            backbone.normalisation = replace(backbone.normalisation, size=self.input_size)
        return backbone


TOWERS = (
    Tower(
        "dinov2_vitb14",
        "vit_base_patch14_dinov2.lvd142m",
        "DINOv2 ViT-B/14 (self-supervised, LVD-142M), CLS token, run at 224 px",
        "Apache-2.0",
        768,
        input_size=224,
        tags=("dinov2", "vit"),
    ),
    Tower(
        "dinov2_vitl14",
        "vit_large_patch14_dinov2.lvd142m",
        "DINOv2 ViT-L/14 (self-supervised, LVD-142M), CLS token, run at 224 px",
        "Apache-2.0",
        1024,
        input_size=224,
        tags=("dinov2", "vit"),
    ),
    Tower(
        "siglip2_vitb16",
        "vit_base_patch16_siglip_224.v2_webli",
        "SigLIP 2 ViT-B/16 image tower (WebLI), attention-pooled",
        "Apache-2.0",
        768,
        tags=("siglip", "vit"),
    ),
    Tower(
        "pe_core_vitb16",
        "vit_pe_core_base_patch16_224.fb",
        "Perception Encoder core ViT-B/16 (Meta), pooled",
        "Apache-2.0",
        768,
        tags=("pe", "vit"),
    ),
    Tower(
        "metaclip_vitb16",
        "vit_base_patch16_clip_224.metaclip_2pt5b",
        "MetaCLIP ViT-B/16 image tower (2.5B pairs), CLS before the projection",
        "CC-BY-NC-4.0",
        768,
        tags=("clip", "vit"),
    ),
    Tower(
        "metaclip_vitl14",
        "vit_large_patch14_clip_224.metaclip_2pt5b",
        "MetaCLIP ViT-L/14 image tower (2.5B pairs), CLS before the projection",
        "CC-BY-NC-4.0",
        1024,
        tags=("clip", "vit"),
    ),
)


@hookimpl
def dfzoo_weights():
    for tower in TOWERS:
        yield timm_weights(tower.weights_name, tower.model, f"{tower.summary} (timm {tower.model})", tower.licence)


@hookimpl
def dfzoo_backbones():
    for tower in TOWERS:
        yield backbone(tower.name, tower.weights_name, tower.dim, tower.tags, tower.build, tower.summary)
