"""Where protocols come from besides a TOML file: the command line's quick flags (``--dataset``, ``--param``,
...) and the protocol files shipped with dfzoo (the default run's, and the extra ones run by bare name).

Re-exported by :mod:`dfzoo.benchmark.protocol`, so ``from dfzoo.benchmark.protocol import default_protocols``
keeps working.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from dfzoo.plain import slug
from dfzoo.transforms import RESIZE

from .protocol import ALL, ANY_DETECTOR, Protocol, ProtocolError, parse_protocol


def parse_value(raw: str) -> Any:
    """A CLI value as TOML would read it (``3``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``), else the string.

    ``none`` stays the string ``"none"``: only the detector's spec knows whether it means None (a parameter
    that allows None and has no ``"none"`` choice, such as ``weights_path``) or the word (``reduction=none``);
    :meth:`dfzoo.DetectorSpec.check_params` decides.
    """
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["backbone=x", "k=3"]`` -> ``{"backbone": "x", "k": 3}``."""
    params = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ProtocolError(f"--param {pair!r}: expected key=value")
        params[key.strip()] = parse_value(raw.strip())
    return params


def protocol_from_flags(
    *,
    dataset: str,
    name: str | None = None,
    layout: str | None = None,
    train: str | Sequence[str] = ALL,
    test: str | Sequence[str] = ALL,
    detectors: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    preprocess: str = RESIZE,
    size: int | None = None,
    seed: int = 0,
    cap: int | None = None,
    perturbations: Sequence[str] = ("none",),
    train_perturbation: str = "none",
    offline_only: bool = False,
    bootstrap: int = 1000,
) -> Protocol:
    """A protocol from ``dfzoo run`` quick flags; ``params`` go to every chosen detector."""
    chosen = list(detectors) or [ANY_DETECTOR]
    data: dict[str, Any] = {
        "name": name or f"cli-{slug(Path(dataset).name or dataset, fallback='dataset')}",
        "dataset": dataset,
        "train_generators": train if isinstance(train, str) else list(train),
        "test_generators": test if isinstance(test, str) else list(test),
        "preprocess": {"mode": preprocess} | ({"size": size} if size else {}),
        "seed": seed,
        "perturbations": list(perturbations) or ["none"],
        "train_perturbation": train_perturbation,
        "detectors": [{"name": d, "params": dict(params or {})} for d in chosen],
        "offline_only": offline_only,
        "bootstrap": bootstrap,
    }
    if layout:
        data["layout"] = layout
    if cap:
        data["cap_per_class"] = cap
    return parse_protocol(data, source="command line", base_dir=os.getcwd())


SHIPPED_FOLDERS = ("protocols_extra", "protocols")  # where bare protocol names are looked up, in order


def shipped_protocol(name: str) -> Any:
    """The shipped protocol file ``<name>.toml`` (``protocols_extra/`` first); a clear error listing the names."""
    root = resources.files("dfzoo.benchmark")
    known = []
    for folder in SHIPPED_FOLDERS:
        candidate = root / folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
        if (root / folder).is_dir():
            known += [p.name.removesuffix(".toml") for p in (root / folder).iterdir() if p.name.endswith(".toml")]
    raise ProtocolError(
        f"protocol {name!r} is neither a file nor a protocol shipped with dfzoo ({', '.join(sorted(known))})"
    )


def default_protocols() -> list[Protocol]:
    """The protocols shipped with dfzoo (``benchmark/protocols/*.toml``), sorted by file name."""
    folder = resources.files("dfzoo.benchmark") / "protocols"
    found = sorted((p for p in folder.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)
    protocols = []
    for item in found:
        data = tomllib.loads(item.read_text())
        data.setdefault("name", item.name.removesuffix(".toml"))
        protocols.append(parse_protocol(data, source=f"dfzoo.benchmark/protocols/{item.name}"))
    return protocols
