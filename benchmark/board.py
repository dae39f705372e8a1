"""One protocol's results arranged for display: detectors x test generators x perturbations, and their means.

- A detector gets a mean only when it has a finite value on every test generator of that mean; ranking puts
  undefined means last.
- Protocols with generators unseen in training rank by the mean over the unseen ones; the seen ones have
  their own mean.
- The interval of a mean resamples the reals that test sets share once per replicate for all of them
  (:func:`metrics.mean_intervals`, image ids from the score sidecars).

Every number comes from the rows (computed by :mod:`dfzoo.benchmark.metrics`) or, for intervals of means and
ROC curves, from ``metrics`` applied to the raw-score sidecars. Renderers (Markdown, HTML, plots) read boards.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import metrics
from .selection import OlderConfiguration, family_label, shown_metrics, threshold_is_meaningful
from .store import ERROR, OK, SKIPPED, ResultStore, Sidecar
from .text import CLEAN, Cell, finite, fmt_value, interval_text, missing, rank_key

UNSEEN, SEEN, ALL_GENERATORS = "unseen", "seen", "all"
GROUP_TITLES = {UNSEEN: "Unseen mean", SEEN: "Seen mean", ALL_GENERATORS: "Mean"}
Curve = tuple[str, np.ndarray, np.ndarray, float]  # (label, fpr, tpr, auc)


class ProtocolBoard:
    """The rows of one protocol configuration arranged by detector label, test generator and perturbation."""

    def __init__(
        self, name: str, rows: list[dict[str, Any]], store: ResultStore, older: Sequence[OlderConfiguration] = ()
    ) -> None:
        self.name = name
        self.rows = rows
        self.store = store
        self.older = list(older)
        self.ok = [r for r in rows if r.get("status") == OK]
        perturbations = list(OrderedDict.fromkeys(r.get("test_perturbation", CLEAN) for r in rows))
        self.clean = CLEAN if CLEAN in perturbations else (perturbations[0] if perturbations else CLEAN)
        self.perturbations = [self.clean] + [p for p in perturbations if p != self.clean]
        trained = {g for r in rows for g in (r.get("train_generators") or [])}
        self.train_generators = sorted(trained)
        self.seen = sorted(
            {r["test_generator"] for r in rows if r.get("seen_in_training") or r["test_generator"] in trained}
        )
        families: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: r.get("status") != OK):  # ok rows first: their family is known
            families.setdefault(row["test_generator"], family_label(row.get("test_family")))
        self.families = families
        self.generators = sorted(families, key=lambda g: (g not in self.seen, families[g], g))
        unseen = [g for g in self.generators if g not in self.seen]
        seen = [g for g in self.generators if g in self.seen]
        self.groups: dict[str, list[str]] = (
            {UNSEEN: unseen, SEEN: seen} if unseen and seen else {ALL_GENERATORS: list(self.generators)}
        )
        self.rank_group = next(iter(self.groups))
        self.cells: dict[tuple[str, str, str], dict[str, Any]] = {
            (r["label"], r["test_generator"], r.get("test_perturbation", CLEAN)): r for r in self.ok
        }
        labels = list(OrderedDict.fromkeys(r["label"] for r in self.ok))
        self.means = {
            (label, p, group): metrics.average_metrics(self._metric_rows(label, p, generators))
            for label in labels
            for p in self.perturbations
            for group, generators in self.groups.items()
        }
        ranking = {label: self.means[(label, self.clean, self.rank_group)]["auc"] for label in labels}
        self.labels = sorted(labels, key=lambda label: rank_key(ranking[label], label))
        self._mean_ci: dict[tuple[str, str, str], dict[str, list[float]]] = {}

    def _metric_rows(self, label: str, perturbation: str, generators: Sequence[str]) -> list[Mapping[str, Any] | None]:
        return [
            shown_metrics(self.cells[(label, g, perturbation)]) if (label, g, perturbation) in self.cells else None
            for g in generators
        ]

    def metric(self, label: str, generator: str, key: str, perturbation: str | None = None) -> float:
        row = self.cells.get((label, generator, perturbation or self.clean))
        return finite(shown_metrics(row).get(key)) if row else math.nan

    def interval(self, label: str, generator: str, key: str, perturbation: str | None = None) -> tuple[float, float]:
        row = self.cells.get((label, generator, perturbation or self.clean))
        low, high = ((row or {}).get("metrics") or {}).get(f"{key}_ci") or (None, None)
        return finite(low), finite(high)

    def policy_shown(self, label: str) -> bool:
        """Whether every result row of ``label`` has a threshold worth showing accuracies for."""
        return all(threshold_is_meaningful(r) for r in self.ok if r["label"] == label)

    def mean_ci(self, label: str, group: str | None = None, perturbation: str | None = None) -> dict[str, list[float]]:
        """Bootstrap intervals of the mean AUC/AP over a group of test generators, from the sidecars.

        NaN when the mean itself is undefined, a sidecar is missing, or the rows asked for no bootstrap.
        """
        group = group or self.rank_group
        perturbation = perturbation or self.clean
        key = (label, group, perturbation)
        if key not in self._mean_ci:
            rows = [self.cells.get((label, g, perturbation)) for g in self.groups[group]]
            self._mean_ci[key] = rows_mean_ci(rows, self.store)
        return self._mean_ci[key]

    def mean_cell(
        self, label: str, key: str, group: str, perturbation: str | None = None, interval: bool = True
    ) -> Cell:
        """The mean of ``key`` over a generator group as a :class:`Cell` (with its interval for AUC/AP)."""
        mean = self.means[(label, perturbation or self.clean, group)]
        value = finite(mean[key])
        if not math.isfinite(value):
            return Cell(value, text=missing(mean, key))
        low, high = (
            self.mean_ci(label, group, perturbation)[f"{key}_ci"]
            if interval and key in ("auc", "ap")
            else (math.nan, math.nan)
        )
        return Cell(value, (low, high), fmt_value(value), interval_text(low, high))

    def generator_cell(self, label: str, generator: str, key: str, perturbation: str | None = None) -> Cell:
        """One test generator's value of ``key`` as a :class:`Cell` with its bootstrap interval."""
        value = self.metric(label, generator, key, perturbation)
        return Cell(value, self.interval(label, generator, key, perturbation), fmt_value(value))

    def first(self, key: str, default: Any = None) -> Any:
        """The first non-empty value of a row field (fields every row of the configuration shares)."""
        for row in self.rows:
            if row.get(key) not in (None, "", {}, []):
                return row[key]
        return default

    def header(self) -> list[str]:
        """Column titles of the test generators; the ones seen in training are marked."""
        return [f"{g} (train)" if g in self.seen else g for g in self.generators]

    def roc_curves(self, perturbation: str | None = None) -> dict[str, list[Curve]]:
        """Per test generator, each detector's ROC curve from its score sidecar (rows without one are left out)."""
        curves: dict[str, list[Curve]] = {}
        for generator in self.generators:
            for label in self.labels:
                row = self.cells.get((label, generator, perturbation or self.clean))
                loaded = self.store.load_scores(row["row_id"]) if row else None
                if loaded is None:
                    continue
                fpr, tpr, _ = metrics.roc_points(*loaded)
                if fpr.size:
                    curves.setdefault(generator, []).append(
                        (label, fpr, tpr, self.metric(label, generator, "auc", perturbation))
                    )
        return curves

    def summary(self, intervals: bool = True) -> list[dict[str, Any]]:
        """Per detector: means per perturbation and generator group, intervals of the clean means, row counts.

        ``rank_group`` names the group the ranking uses (``"unseen"`` or ``"all"``); undefined means are NaN.
        """
        out = []
        for label in [
            *self.labels,
            *(name for name in OrderedDict.fromkeys(r["label"] for r in self.rows) if name not in self.labels),
        ]:
            rows = [r for r in self.rows if r["label"] == label]
            entry = {
                "label": label,
                "detector": rows[0].get("detector"),
                "rank_group": self.rank_group,
                "status": {s: sum(r.get("status") == s for r in rows) for s in (OK, ERROR, SKIPPED)},
            }
            if label in self.labels:
                entry["mean"] = {
                    p: {group: self.means[(label, p, group)] for group in self.groups} for p in self.perturbations
                }
                if intervals:
                    entry["mean_ci"] = {group: self.mean_ci(label, group) for group in self.groups}
            out.append(entry)
        return out


def rows_mean_ci(rows: Sequence[Mapping[str, Any] | None], store: ResultStore) -> dict[str, list[float]]:
    """Bootstrap intervals of the mean AUC/AP over the test sets of ``rows`` (one row per set), from their
    sidecars, resampling images shared by several sets jointly (:func:`metrics.mean_intervals`).

    NaN when a row (None) or a sidecar is missing, or the rows asked for no bootstrap.
    """
    empty = {"auc_ci": [math.nan, math.nan], "ap_ci": [math.nan, math.nan]}
    present = [row for row in rows if row]
    if not rows or len(present) < len(rows):
        return empty
    sidecars = [store.load_sidecar(str(row["row_id"])) for row in present]
    n = int(present[0].get("bootstrap") or 0)
    if not n or any(sidecar is None for sidecar in sidecars):
        return empty
    found = {
        f"{i}:{row.get('test_generator')}": s for i, (row, s) in enumerate(zip(present, sidecars, strict=True)) if s
    }
    sets = [(s.labels, s.scores) for s in found.values()]
    return metrics.mean_intervals(sets, n, int(present[0].get("seed") or 0), ids=image_ids(found))


def boards(rows: list[dict[str, Any]], older: list[OlderConfiguration], store: ResultStore) -> list[ProtocolBoard]:
    """One board per protocol name of ``rows`` (sorted by name), each with its left-out older configurations."""
    names = sorted({str(r.get("protocol")) for r in rows})
    return [
        ProtocolBoard(
            name, [r for r in rows if str(r.get("protocol")) == name], store, [o for o in older if o.protocol == name]
        )
        for name in names
    ]


def image_ids(sidecars: Mapping[str, Sidecar]) -> list[np.ndarray]:
    """Per test set (keyed by generator), the id of each image, so that shared images are resampled jointly.

    Recorded ids are used as they are. Sidecars written before ids were recorded name their reals by the
    whole vector of real scores: the harness scores the shared reals once per perturbation and puts them in
    every test set in the same order, so identical real-score vectors are the same reals; fakes are the test
    generator's own.
    """
    out = []
    for generator, sidecar in sidecars.items():
        if sidecar.ids is not None:
            out.append(sidecar.ids.astype(object))
            continue
        reals = sidecar.labels == 0
        digest = hashlib.sha256(np.ascontiguousarray(sidecar.scores[reals]).tobytes()).hexdigest()[:16]
        ids = np.empty(sidecar.labels.size, dtype=object)
        ids[reals] = [f"reals-{digest}:{i}" for i in range(int(reals.sum()))]
        ids[~reals] = [f"{generator}:fake:{i}" for i in range(int((~reals).sum()))]
        out.append(ids)
    return out


__all__ = ["ALL_GENERATORS", "GROUP_TITLES", "SEEN", "UNSEEN", "ProtocolBoard", "boards", "image_ids"]
