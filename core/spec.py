"""Typed specs that plugins yield from their hooks.

Hooks return *descriptions* (frozen, keyword-only dataclasses), never behaviour that runs at import time:
the registry validates them centrally and the heavy work happens only when a factory is called.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported only for type checkers: keeps `import dfzoo` light
    from .data.sample import DatasetIndex
    from .detector import Detector
    from .features import Backbone
    from .transforms import Perturbation

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.\-]*( [a-z][a-z0-9_.\-]*)?$")


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """A detection method.

    ``factory(**params)`` builds an unfitted detector; ``params`` are its defaults, merged under what the
    user passes. ``weight_params`` names the parameters whose values are backbone or weights names, so the
    zoo can tell (without building anything) whether the detector's weights resolve on this machine.
    ``smoke_params`` is a tiny, fast configuration (random-initialised small models, one epoch) that the
    contract tests run for every registered detector; ``"backbone": "tiny_cnn"`` means the tests' own
    random 32 px backbone. ``reads_files`` declares a method that must read image files itself (e.g. a
    format-aware one): the harness then shows it file paths and checks on probe images that each
    perturbation still changes its scores, refusing robustness rows where it does not.
    """

    name: str
    factory: Callable[..., Detector]
    summary: str
    paper: str = ""
    trainable: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    weight_params: tuple[str, ...] = ("backbone",)
    smoke_params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    reads_files: bool = False


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """A dataset layout or a named dataset.

    ``load(root, **params)`` returns a :class:`~dfzoo.data.sample.DatasetIndex`. ``root`` is ``None`` for
    datasets that know where they live (the built-in zoo). ``detect(root)`` says whether a folder looks like
    this layout, so ``dfzoo run --dataset PATH`` can pick the layout by itself; detectors with a higher
    ``priority`` are asked first.
    """

    name: str
    load: Callable[..., DatasetIndex]
    summary: str
    detect: Callable[[Path], bool] | None = None
    needs_root: bool = True
    priority: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """A frozen feature extractor.

    ``factory(weights, device)`` returns a :class:`~dfzoo.features.Backbone`; ``weights`` is the resolved
    pretrained weights, or ``None`` to build the same architecture randomly initialised (tests do this, and
    results say so). ``weights`` here names the :class:`WeightsSpec` that pretrained use needs.
    """

    name: str
    factory: Callable[..., Backbone]
    summary: str
    weights: str = ""
    feature_dim: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WeightsSpec:
    """Pretrained weights with an offline-first resolution chain.

    Resolution (see :mod:`dfzoo.weights`): an explicit path, then ``$DFZOO_WEIGHTS_DIR/<name>/``, then
    ``find_local()`` (a library cache with ``local_files_only=True``, or a file shipped in an installed
    package), then ``download()`` where the network is allowed. ``files`` are the file names expected in
    ``$DFZOO_WEIGHTS_DIR/<name>/`` (the first that exists wins); ``fetch_hint`` is the command that gets them.
    """

    name: str
    summary: str
    library: str
    source: str = ""
    files: tuple[str, ...] = ()
    find_local: Callable[[], Path | None] | None = None
    download: Callable[[], Path] | None = None
    fetch_hint: str = ""
    licence: str = ""


@dataclass(frozen=True, kw_only=True)
class PerturbationSpec:
    """A named, parameterised image perturbation (blur, JPEG, jitter...), shared by every part of dfzoo.

    ``factory(**params)`` returns a :class:`~dfzoo.transforms.Perturbation`.
    """

    name: str
    factory: Callable[..., Perturbation]
    summary: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CommandSpec:
    """A `dfzoo` sub-command. ``name`` may have two words ("data build-zoo") to sit in a command group.

    ``add_arguments(parser)`` declares options on an ``argparse`` parser; ``run(args)`` returns an exit code.
    """

    name: str
    summary: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int]


__all__ = [
    "CommandSpec",
    "NAME_PATTERN",
    "BackboneSpec",
    "DatasetSpec",
    "DetectorSpec",
    "PerturbationSpec",
    "WeightsSpec",
]
