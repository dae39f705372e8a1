"""Recompute every stored number from the per-image score sidecars (``dfzoo leaderboard --check``).

A result row's metrics were computed by :func:`metrics.binary_metrics` from the labels and scores saved in its
sidecar, with the row's ``threshold``, ``bootstrap`` (replicates) and ``seed``. Checking a store redoes that for
every ``ok`` row and reports each row whose sidecar is missing or whose stored metrics differ from the
recomputed ones, so a leaderboard can be trusted without trusting the process that wrote it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import metrics
from .store import OK, ResultStore, clean_json

TOLERANCE = 1e-9


@dataclass(frozen=True)
class CheckProblem:
    """A row that failed the check and why."""

    row_id: str
    where: str  # protocol / detector label / test generator / perturbation
    problem: str

    def __str__(self) -> str:
        return f"row {self.row_id} ({self.where}): {self.problem}"


@dataclass
class CheckReport:
    """What :func:`check_store` found: how many ``ok`` rows it recomputed and the problems."""

    rows_checked: int
    problems: list[CheckProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(store_dir: str | Path, tolerance: float = TOLERANCE) -> CheckReport:
    """Recompute the metrics of every ``ok`` row of the store from its sidecar and compare (see module doc)."""
    store = ResultStore(store_dir)
    if not store.results.exists():
        raise FileNotFoundError(f"no results in {store_dir} (expected {store.results})")
    problems: list[CheckProblem] = []
    checked = 0
    for row in store.iter_rows():
        if row.get("status") != OK:
            continue
        checked += 1
        row_id = str(row.get("row_id"))
        where = " / ".join(str(row.get(k)) for k in ("protocol", "label", "test_generator", "test_perturbation"))
        sidecar = store.load_sidecar(row_id)
        if sidecar is None:
            problems.append(
                CheckProblem(
                    row_id,
                    where,
                    f"score sidecar {store.scores_path(row_id)} is missing or "
                    "unreadable: its numbers cannot be recomputed",
                )
            )
            continue
        try:
            recomputed = metrics.binary_metrics(
                sidecar.labels,
                sidecar.scores,
                float(row["threshold"]),
                n_bootstrap=int(row.get("bootstrap") or 0),
                seed=int(row.get("seed") or 0),
            )
        except (KeyError, TypeError, ValueError) as error:
            problems.append(CheckProblem(row_id, where, f"cannot recompute: {type(error).__name__}: {error}"))
            continue
        differences = differing(row.get("metrics") or {}, clean_json(recomputed), tolerance)
        if differences:
            problems.append(
                CheckProblem(row_id, where, "stored metrics differ from the recomputed ones: " + "; ".join(differences))
            )
    return CheckReport(checked, problems)


def differing(stored: Any, recomputed: Any, tolerance: float = TOLERANCE, path: str = "") -> list[str]:
    """``"key: stored X, recomputed Y"`` for every value that differs (numbers by more than ``tolerance``;
    ``None`` stands for NaN, as in stored rows)."""
    name = path or "metrics"
    if isinstance(stored, Mapping) and isinstance(recomputed, Mapping):
        out = []
        for key in sorted(set(stored) | set(recomputed)):
            inner = f"{path}.{key}" if path else str(key)
            if key not in stored or key not in recomputed:
                side = "stored only" if key in stored else "recomputed only"
                out.append(f"{inner}: {side} ({stored.get(key, recomputed.get(key))!r})")
            else:
                out.extend(differing(stored[key], recomputed[key], tolerance, inner))
        return out
    if isinstance(stored, list) and isinstance(recomputed, list) and len(stored) == len(recomputed):
        return [
            difference
            for i, (a, b) in enumerate(zip(stored, recomputed, strict=True))
            for difference in differing(a, b, tolerance, f"{name}[{i}]")
        ]
    if _is_number(stored) and _is_number(recomputed):
        if math.isclose(float(stored), float(recomputed), rel_tol=0.0, abs_tol=tolerance):
            return []
    elif stored == recomputed:
        return []
    return [f"{name}: stored {stored!r}, recomputed {recomputed!r}"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["TOLERANCE", "CheckProblem", "CheckReport", "check_store", "differing"]
