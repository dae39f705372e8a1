"""Perturbation sweeps, written as data and read back from results.

Written: a protocol's ``perturbations`` may list a sweep, one parameter with several values, as
``"jpeg:quality=95,90,75"`` (a bare value after ``key=value`` continues that key's list); it expands into one
perturbation per value, ``"jpeg:quality=95"``, ``"jpeg:quality=90"``, ... (several lists give every
combination, the first parameter varying slowest). The sweeps SIDBench and AEROBLADE publish read
``["jpeg:quality=95,90,75,50,30", "blur:sigma=0.5,1,2,4", "downscale:scale=0.75,0.5,0.25"]``.

Read: the perturbation keys of a protocol's rows that share a name and differ in one parameter are the points
of one robustness curve (:func:`find_sweeps`), in the order the protocol lists them.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dfzoo.transforms import parse_perturbation


def expand_sweep(key: str) -> list[str]:
    """``"jpeg:quality=95,90"`` -> ``["jpeg:quality=95", "jpeg:quality=90"]``; a key without a list is itself."""
    name, sep, rest = key.strip().partition(":")
    if not sep:
        return [key]
    values: OrderedDict[str, list[str]] = OrderedDict()
    current = None
    for part in filter(None, (p.strip() for p in rest.split(","))):
        field, has_value, raw = part.partition("=")
        if has_value:
            current = field.strip()
            values[current] = [raw.strip()]
        elif current is None:
            return [key]  # not key=value: left for the perturbation parser to reject with its own message
        else:
            values[current].append(part)
    if all(len(v) == 1 for v in values.values()):
        return [key]
    combos = itertools.product(*values.values())
    return [f"{name}:" + ",".join(f"{k}={v}" for k, v in zip(values, combo, strict=True)) for combo in combos]


def expand_sweeps(keys: Iterable[Any]) -> tuple[Any, ...]:
    """Every key of ``keys`` with its sweep expanded, in order (anything not a string is left for validation)."""
    return tuple(expanded for key in keys for expanded in (expand_sweep(key) if isinstance(key, str) else [key]))


@dataclass(frozen=True)
class Sweep:
    """Perturbations of one kind that differ in one parameter: ``name`` (e.g. "jpeg quality"), the keys in
    order and the value of the varying parameter at each."""

    name: str
    keys: tuple[str, ...]
    points: tuple[str, ...]


def find_sweeps(perturbations: Sequence[str], clean: str) -> list[Sweep]:
    """The sweeps among a protocol's test perturbations (``clean`` excluded; unparsable keys are ignored)."""
    by_kind: OrderedDict[str, list[tuple[str, dict]]] = OrderedDict()
    for key in perturbations:
        if key == clean:
            continue
        try:
            name, params = parse_perturbation(key)
        except ValueError:
            continue
        by_kind.setdefault(name, []).append((key, params))
    found = []
    for name, members in by_kind.items():
        keys = sorted({k for _, params in members for k in params})
        varying = [k for k in keys if len({repr(params.get(k)) for _, params in members}) > 1]
        if len(varying) > 1:
            continue  # two parameters change at once: no single strength axis
        parameter = varying[0] if varying else (keys[0] if len(keys) == 1 else "")
        points = tuple(str(params.get(parameter, key)) if parameter else key for key, params in members)
        found.append(Sweep(f"{name} {parameter}".strip(), tuple(key for key, _ in members), points))
    return found


__all__ = ["Sweep", "expand_sweep", "expand_sweeps", "find_sweeps"]
