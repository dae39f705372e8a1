"""Intermediate blocks of a transformer backbone as features: which blocks, which token, and a torch backbone
that returns them.

A choice is a :class:`LayerSelection`: ``layers`` names blocks by 0-based index as in the models' own module
names (``blocks.6`` in timm, ``transformer.resblocks.6`` in open_clip): ``"7"``, ``"5-11"``, ``"4,7,11"``,
``"-1"`` (the last), ``"all"``; ``token`` pools each block's output tokens: ``cls`` (the class token), ``mean``
(the mean of the patch tokens) or ``cls_mean`` (both, side by side). A block's output is the residual stream
after the block (before any final norm). The vector of an image is the blocks' pooled tokens concatenated in
block order, so ``vector.reshape(len(blocks), -1)`` gives one row per block.

Written as a backbone name suffix in the style of perturbation keys, ``clip_vit_b16_float:layers=5-11,token=cls``,
or as :func:`dfzoo.features.load_backbone` arguments (``layers="5-11", token="mean"``). The choice is part of
the backbone's settings, hence of its feature-cache identity: two choices never share cached vectors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import TorchBackbone

if TYPE_CHECKING:
    import torch

TOKENS = ("cls", "mean", "cls_mean")
SUFFIX = ":"  # "name:layers=5-11,token=cls"; registered names never contain ":"
_ITEM = re.compile(r"^(-?\d+)(?:-(\d+))?$")


class LayersNotExposed(ValueError):
    """The backbone (or the layer choice) cannot give intermediate-block tokens."""


@dataclass(frozen=True)
class LayerSelection:
    """Which blocks (``layers``, text or indices) and which token of each (``token``); see the module doc."""

    layers: str = "all"
    token: str = "cls"

    def __post_init__(self) -> None:
        if self.token not in TOKENS:
            raise LayersNotExposed(f"unknown token {self.token!r}; allowed: {', '.join(TOKENS)}")
        parse_blocks(self.layers, None)  # syntax checked now, ranges once the depth is known

    @classmethod
    def parse(cls, text: str) -> LayerSelection:
        """``"layers=5-11,token=cls"`` (either key may be left out; a list continues after commas:
        ``"layers=4,7,11,token=mean"``)."""
        values: dict[str, str] = {}
        key = None
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if sep:
                key = name.strip()
                if key not in ("layers", "token"):
                    raise LayersNotExposed(f"unknown layer option {key!r} in {text!r}; options: layers, token")
                values[key] = value.strip()
            elif key == "layers":
                values[key] += f",{part}"
            else:
                raise LayersNotExposed(f"layer option {part!r} in {text!r} is not key=value")
        return cls(**values)

    def blocks(self, depth: int) -> tuple[int, ...]:
        """The selected block indices (sorted, unique, non-negative) in a model of ``depth`` blocks."""
        return parse_blocks(self.layers, depth)

    def key(self, depth: int) -> str:
        """The canonical text of this choice for a model of ``depth`` blocks (``-1`` and ``11`` read alike)."""
        return f"layers={format_blocks(self.blocks(depth))},token={self.token}"

    @property
    def tokens_per_block(self) -> int:
        return 2 if self.token == "cls_mean" else 1


def parse_blocks(text: str, depth: int | None) -> tuple[int, ...]:
    """Block indices from ``"all"``, ``"7"``, ``"5-11"``, ``"4,7,11"``, ``"-1"``; ``depth=None`` checks syntax only."""
    text = text.strip().lower()
    if text == "all":
        return tuple(range(depth)) if depth is not None else ()
    chosen: set[int] = set()
    for item in filter(None, (p.strip() for p in text.split(","))):
        match = _ITEM.match(item)
        if match is None:
            raise LayersNotExposed(f"layers {text!r}: {item!r} is not a block index or a range like 5-11")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if depth is None:
            continue
        if start < 0 and match.group(2) is None:
            start = stop = depth + start
        if start < 0 or stop < start or stop >= depth:
            raise LayersNotExposed(f"layers {text!r}: {item!r} is outside blocks 0-{depth - 1} (0-based)")
        chosen.update(range(start, stop + 1))
    if depth is not None and not chosen:
        raise LayersNotExposed(f"layers {text!r} selects no block")
    return tuple(sorted(chosen))


def format_blocks(blocks: Sequence[int]) -> str:
    """``(4, 5, 6, 9)`` -> ``"4-6,9"``."""
    runs: list[list[int]] = []
    for index in sorted(blocks):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def split_backbone_name(name: str) -> tuple[str, LayerSelection | None]:
    """``"clip:layers=5-11"`` -> ``("clip", LayerSelection("5-11"))``; a plain name -> ``(name, None)``."""
    base, sep, rest = name.partition(SUFFIX)
    return (base.strip(), LayerSelection.parse(rest)) if sep else (name, None)


def selection_from(
    suffix: LayerSelection | None, layers: str | Sequence[int] | None, token: str | None
) -> LayerSelection | None:
    """A name suffix's choice with explicit ``layers`` / ``token`` arguments on top (None when neither)."""
    if suffix is None and layers is None and token is None:
        return None
    base = suffix or LayerSelection()
    if layers is not None and not isinstance(layers, str):
        layers = ",".join(str(int(i)) for i in layers)
    return LayerSelection(base.layers if layers is None else layers, base.token if token is None else token)


def pooled_parts(tokens: Any, token: str, prefix_tokens: int) -> list[Any]:
    """The pooled vectors of one block's ``tokens`` [B, L, D] (numpy array or torch tensor), in order."""
    parts = []
    if token in ("cls", "cls_mean"):
        if prefix_tokens < 1:
            raise LayersNotExposed("token 'cls' needs a class token; this model has none (use token=mean)")
        parts.append(tokens[:, 0])
    if token in ("mean", "cls_mean"):
        parts.append(tokens[:, prefix_tokens:].mean(1))
    return parts


def describe_selection(blocks: Sequence[int], depth: int, token: str, block_dim: int) -> dict[str, Any]:
    """What a layer-selecting backbone adds to ``describe()``."""
    return {"layers": format_blocks(blocks), "depth": depth, "token": token, "block_dim": block_dim}


# -- torch ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockSite:
    """Where a model's transformer blocks are and how many prefix (class/register) tokens lead its sequence."""

    blocks: Sequence[Any]
    prefix_tokens: int


def locate_blocks(module: Any) -> BlockSite:
    """The blocks of a timm ViT (``.blocks``, ``.num_prefix_tokens``) or of an open_clip image tower
    (``.transformer.resblocks``, a class token when ``.class_embedding`` is set)."""
    blocks = getattr(module, "blocks", None)
    if blocks is not None and hasattr(module, "num_prefix_tokens"):
        return BlockSite(list(blocks), int(module.num_prefix_tokens))
    transformer = getattr(module, "transformer", None)
    resblocks = getattr(transformer, "resblocks", None)
    if resblocks is not None:
        return BlockSite(list(resblocks), 1 if getattr(module, "class_embedding", None) is not None else 0)
    raise LayersNotExposed(
        f"{type(module).__name__} has no transformer blocks dfzoo can find "
        "(timm ViTs: .blocks and .num_prefix_tokens; open_clip image towers: .transformer.resblocks)"
    )


class _Stop(Exception):
    """Raised by the hook of the last needed block: later blocks need not run."""


class TorchLayerBackbone(TorchBackbone):
    """A :class:`TorchBackbone` whose vectors are the pooled tokens of chosen blocks (forward hooks on them).

    The module is shared with the backbone it was made from; the forward stops after the last chosen block.
    ``layer_shape`` is ``(number of blocks, values per block)``.
    """

    def __init__(self, base: TorchBackbone, selection: LayerSelection) -> None:
        site = locate_blocks(base.module)
        self.depth = len(site.blocks)
        self.blocks = selection.blocks(self.depth)
        self.token = selection.token
        self.prefix_tokens = site.prefix_tokens
        self._hooked = [site.blocks[i] for i in self.blocks]
        self.batch_axis, width = self._probe(base)
        block_dim = width * selection.tokens_per_block
        settings = {**base.settings, "layers": list(self.blocks), "token": self.token}
        name = f"{base.name}{SUFFIX}{selection.key(self.depth)}"
        super().__init__(
            name,
            base.module,
            base.normalisation,
            len(self.blocks) * block_dim,
            base.weights_identity,
            base.device,
            settings,
        )
        self.layer_shape = (len(self.blocks), block_dim)

    def _probe(self, base: TorchBackbone) -> tuple[int, int]:
        """Which axis of a block output is the batch (1 for open_clip's sequence-first layout) and the width."""
        import torch

        size = base.normalisation.size
        with torch.inference_mode():
            (out,) = self._outputs(base.module, torch.zeros(1, 3, size, size, device=base.device), self._hooked[:1])
        if out.ndim != 3:
            raise LayersNotExposed(f"{base.name}: block outputs have shape {tuple(out.shape)}, not [B, L, D]")
        axis = 0 if out.shape[0] == 1 else 1
        return axis, int(out.shape[-1])

    @staticmethod
    def _outputs(module: Any, batch: torch.Tensor, blocks: Sequence[Any]) -> list[torch.Tensor]:
        """The outputs of ``blocks`` for ``batch``, in block order; the forward stops after the last one."""
        seen: dict[int, torch.Tensor] = {}
        last = blocks[-1]

        def hook(block: Any, _inputs: Any, output: Any) -> None:
            seen[id(block)] = output[0] if isinstance(output, tuple) else output
            if block is last:
                raise _Stop

        handles = [block.register_forward_hook(hook) for block in blocks]
        try:
            module(batch)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return [seen[id(block)] for block in blocks]

    def forward(self, batch: Any) -> Any:
        """Tensor in, pooled block tokens out [B, blocks * block_dim] (gradients flow when enabled)."""
        import torch

        parts = []
        for out in self._outputs(self.module, batch, self._hooked):
            tokens = out if self.batch_axis == 0 else out.transpose(0, 1)
            parts.extend(pooled_parts(tokens, self.token, self.prefix_tokens))
        return torch.cat(parts, dim=1)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        from .device import autocast

        torch = self._torch
        with torch.inference_mode(), autocast(self.device):
            out = self.forward(torch.from_numpy(batch).to(self.device, non_blocking=True))
        return out.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        block_dim = self.layer_shape[1]
        return {**super().describe(), **describe_selection(self.blocks, self.depth, self.token, block_dim)}


__all__ = [
    "TOKENS",
    "BlockSite",
    "LayerSelection",
    "LayersNotExposed",
    "TorchLayerBackbone",
    "format_blocks",
    "locate_blocks",
    "parse_blocks",
    "pooled_parts",
    "split_backbone_name",
]
