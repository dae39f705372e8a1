"""``dfzoo compare``: per-cell ROC-AUC differences between two result stores (a baseline A and a candidate B),
or between two detectors of one store, each with paired tests on the same images.

A cell is (protocol, test generator, test perturbation) and, for two stores, the detector label. The two rows
of a cell are paired image by image through the ids their score sidecars record (rows without ids pair by
position when their labels agree); images only one side has, or that either side left unscored, are dropped
and the count that remains is shown. Each cell gets B − A, a paired-bootstrap 95% interval, DeLong's p and
Holm's adjustment of the p-values over all cells (:mod:`.paired`). Only the current configuration of each
protocol is compared (:func:`selection.current_configurations`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .page import esc, page_html, table_html
from .paired import delong, holm, paired_bootstrap
from .selection import current_configurations, short_labels
from .store import OK, ResultStore, Sidecar
from .text import Cell, fmt_value, tabulate

HEADERS = [
    "protocol",
    "detector",
    "generator",
    "perturbation",
    "images",
    "AUC A",
    "AUC B",
    "B − A",
    "95% CI",
    "DeLong p",
    "p (Holm)",
]


@dataclass
class CellComparison:
    """One compared cell: where, how many paired images, both AUCs, B − A with its interval, p-values."""

    protocol: str
    detector: str
    generator: str
    perturbation: str
    images: int
    auc_a: float = math.nan
    auc_b: float = math.nan
    difference: float = math.nan
    interval: tuple[float, float] = (math.nan, math.nan)
    p_delong: float = math.nan
    p_holm: float = math.nan
    problem: str = ""

    def cells(self) -> list[Any]:
        low, high = self.interval
        interval = f"[{fmt_value(low)}, {fmt_value(high)}]" if math.isfinite(low) else self.problem or "–"
        return [
            self.protocol,
            self.detector,
            self.generator,
            self.perturbation,
            self.images,
            Cell(self.auc_a, text=fmt_value(self.auc_a)),
            Cell(self.auc_b, text=fmt_value(self.auc_b)),
            Cell(self.difference, text=f"{self.difference:+.3f}" if math.isfinite(self.difference) else "–"),
            interval,
            Cell(self.p_delong, text=_p(self.p_delong)),
            Cell(self.p_holm, text=_p(self.p_holm)),
        ]


@dataclass
class Comparison:
    """What was compared (the names of A and B) and every cell."""

    name_a: str
    name_b: str
    cells: list[CellComparison]

    def table(self) -> str:
        """The terminal table and a one-line verdict."""
        rows = [[c.render() if isinstance(c, Cell) else c for c in cell.cells()] for cell in self.cells]
        return tabulate(rows, HEADERS, fmt="simple") + "\n" + self.verdict()

    def verdict(self) -> str:
        tested = [c for c in self.cells if math.isfinite(c.p_holm)]
        better = sum(c.p_holm < 0.05 and c.difference > 0 for c in tested)
        worse = sum(c.p_holm < 0.05 and c.difference < 0 for c in tested)
        return (
            f"A = {self.name_a}, B = {self.name_b}: {len(self.cells)} cell(s), {len(tested)} tested; B is better in "
            f"{better} and worse in {worse} at p (Holm) < 0.05; the rest show no difference the images can tell."
        )

    def html_section(self) -> str:
        """The comparison as an HTML section (sortable table and verdict)."""
        return (
            f'<section id="compare"><h2>Comparison: {esc(self.name_b)} vs {esc(self.name_a)}</h2>'
            f'<p class="note">{esc(self.verdict())} B − A per cell on the same images, paired-bootstrap 95% '
            "interval, DeLong's test for correlated AUCs, Holm's adjustment over all cells.</p>"
            + table_html(HEADERS, [cell.cells() for cell in self.cells])
            + "</section>"
        )

    def write_html(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "compare.html"
        path.write_text(page_html(f"dfzoo compare: {self.name_b} vs {self.name_a}", "", [self.html_section()]))
        return path


def compare_stores(
    store_a: str | Path,
    store_b: str | Path,
    *,
    protocols: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare every cell the two stores share (same protocol, detector label, generator, perturbation)."""
    a, b = ResultStore(store_a), ResultStore(store_b)
    rows_a, rows_b = (_cells(store.rows(), protocols) for store in (a, b))
    names = short_labels([*rows_a.values(), *rows_b.values()])
    pairs = [(rows_a[key], rows_b[key], names.get(key[1], key[1])) for key in rows_a if key in rows_b]
    return _compare(str(store_a), str(store_b), a, b, pairs, n_bootstrap, seed)


def compare_detectors(
    store_dir: str | Path,
    detector_a: str,
    detector_b: str,
    *,
    protocols: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare two detectors of one store on every (protocol, generator, perturbation) both have."""
    store = ResultStore(store_dir)
    rows = _cells(store.rows(), protocols)
    names = short_labels(list(rows.values()))
    label_a, label_b = (find_label(names, wanted) for wanted in (detector_a, detector_b))
    by_place: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for (protocol, label, generator, perturbation), row in rows.items():
        by_place.setdefault((protocol, generator, perturbation), {})[label] = row
    pairs = [
        (found[label_a], found[label_b], f"{names[label_b]} vs {names[label_a]}")
        for found in by_place.values()
        if label_a in found and label_b in found
    ]
    return _compare(names[label_a], names[label_b], store, store, pairs, n_bootstrap, seed)


def find_label(names: Mapping[str, str], wanted: str) -> str:
    """The detector label ``wanted`` names: a label, a readable name, or a detector name with one configuration."""
    if wanted in names:
        return wanted
    matches = [label for label, name in names.items() if wanted in (name, label.split("[")[0])]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(names.values()))
    raise ValueError(
        f"detector {wanted!r} {'is ambiguous' if matches else 'not found'} in the store; its detectors: {known}"
    )


def _cells(
    rows: Sequence[dict[str, Any]], protocols: Sequence[str] | None
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    shown, _ = current_configurations(rows)
    return {
        (str(r["protocol"]), str(r["label"]), str(r["test_generator"]), str(r.get("test_perturbation", "none"))): r
        for r in shown
        if r.get("status") == OK and (protocols is None or r["protocol"] in protocols)
    }


def _compare(
    name_a: str,
    name_b: str,
    store_a: ResultStore,
    store_b: ResultStore,
    pairs: list[tuple[dict[str, Any], dict[str, Any], str]],
    n_bootstrap: int,
    seed: int,
) -> Comparison:
    cells = []
    for row_a, row_b, detector in pairs:
        cell = CellComparison(
            row_a["protocol"], detector, row_a["test_generator"], row_a.get("test_perturbation", "none"), 0
        )
        paired = align(store_a.load_sidecar(row_a["row_id"]), store_b.load_sidecar(row_b["row_id"]))
        if isinstance(paired, str):
            cell.problem = paired
        else:
            labels, a, b = paired
            cell.images = int(np.isfinite(a + b).sum())
            try:
                test = delong(labels, a, b)
                boot = paired_bootstrap(labels, a, b, n_bootstrap, seed)
            except ValueError as error:
                cell.problem = str(error)
            else:
                cell.auc_a, cell.auc_b, cell.difference = test.auc_a, test.auc_b, test.difference
                cell.interval, cell.p_delong = boot.interval, test.p_value
        cells.append(cell)
    for cell, adjusted in zip(cells, holm([c.p_delong for c in cells]), strict=True):
        cell.p_holm = adjusted
    return Comparison(name_a, name_b, cells)


def align(a: Sidecar | None, b: Sidecar | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """``(labels, scores A, scores B)`` of the images both sidecars hold, or why they cannot be paired."""
    if a is None or b is None:
        return "score sidecar missing"
    if a.ids is not None and b.ids is not None:
        position = {image: i for i, image in enumerate(b.ids.tolist())}
        shared = [(i, position[image]) for i, image in enumerate(a.ids.tolist()) if image in position]
        if not shared:
            return "no image in common"
        first, second = (np.array(side) for side in zip(*shared, strict=True))
        if not np.array_equal(a.labels[first], b.labels[second]):
            return "the same image ids carry different labels"
        return a.labels[first], a.scores[first], b.scores[second]
    if a.labels.shape == b.labels.shape and np.array_equal(a.labels, b.labels):
        return a.labels, a.scores, b.scores
    return "images cannot be paired (no recorded ids and different test sets)"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:.2g}" if value >= 1e-4 else "<1e-4"


__all__ = ["CellComparison", "Comparison", "align", "compare_detectors", "compare_stores", "find_label"]
