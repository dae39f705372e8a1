"""The figures of one protocol, from its board: the ROC-AUC heatmap (with intervals), ROC curves on a linear
and a logarithmic false-positive axis, and robustness curves over perturbation sweeps.

A sweep is read from the perturbation keys themselves (``jpeg:quality=95``, ``jpeg:quality=75``, ...): keys of
the same perturbation whose parameters differ in one parameter are the points of one curve, in the order the
protocol lists them, after the clean condition. File names are ``<protocol slug>-<figure>.<format>``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfzoo.transforms import parse_perturbation

from . import plots
from .board import GROUP_TITLES, ProtocolBoard
from .text import condition, slug

HEATMAP, ROC, ROC_LOG, ROBUSTNESS = "auc", "roc", "roc-log", "robustness"


@dataclass(frozen=True)
class Sweep:
    """Perturbations of one kind that differ in one parameter: ``name`` (e.g. "jpeg quality"), the keys in
    order and the value of the varying parameter at each."""

    name: str
    keys: tuple[str, ...]
    points: tuple[str, ...]


def sweeps(perturbations: Sequence[str], clean: str) -> list[Sweep]:
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


def board_figures(
    board: ProtocolBoard,
    folder: Path,
    names: Mapping[str, str] | None = None,
    formats: Sequence[str] = ("png",),
    extended: bool = False,
) -> dict[str, list[Path]]:
    """Draw the board's figures into ``folder``: the heatmap and linear ROC curves always, the log-FPR ROC
    curves and robustness curves when ``extended``. Returns the files of each figure by kind."""
    if not board.labels:
        return {}
    names = names or {}
    shown = [names.get(label, label) for label in board.labels]
    stem = folder / slug(board.name)
    grid = np.array([[board.metric(label, g, "auc") for g in board.generators] for label in board.labels])
    intervals = np.array(
        [
            [
                *(board.interval(label, g, "auc") for g in board.generators),
                board.mean_cell(label, "auc", board.rank_group).interval,
            ]
            for label in board.labels
        ]
    )
    means = [board.means[(label, board.clean, board.rank_group)]["auc"] for label in board.labels]
    written = {
        HEATMAP: plots.auc_heatmap(
            f"{board.name}: ROC-AUC ({condition(board.clean)}) [95% CI]",
            shown,
            board.generators,
            grid,
            Path(f"{stem}-{HEATMAP}"),
            board.seen,
            means,
            mean_label=GROUP_TITLES[board.rank_group].lower(),
            intervals=intervals,
            formats=formats,
        )
    }
    curves = {
        generator: [(names.get(label, label), fpr, tpr, auc) for label, fpr, tpr, auc in panel]
        for generator, panel in board.roc_curves().items()
    }
    if curves:
        title = f"{board.name}: ROC curves ({condition(board.clean)})"
        written[ROC] = plots.roc_grid(title, curves, Path(f"{stem}-{ROC}"), board.seen, formats=formats)
        if extended:
            written[ROC_LOG] = plots.roc_grid(
                title + ", log false-positive rate", curves, Path(f"{stem}-{ROC_LOG}"), board.seen, True, formats
            )
    found = sweeps(board.perturbations, board.clean) if extended else []
    if found:
        panels = {}
        for sweep in found:
            keys = (board.clean, *sweep.keys)
            bands = []
            for label in board.labels:
                cells = [board.mean_cell(label, "auc", board.rank_group, key) for key in keys]
                bands.append(
                    plots.Band(
                        names.get(label, label),
                        [c.value for c in cells],
                        [c.interval[0] for c in cells],
                        [c.interval[1] for c in cells],
                    )
                )
            panels[sweep.name] = (("clean", *sweep.points), bands)
        scope = GROUP_TITLES[board.rank_group].lower()
        written[ROBUSTNESS] = plots.robustness_curves(
            f"{board.name}: robustness ({scope} ROC-AUC, 95% CI band)",
            panels,
            Path(f"{stem}-{ROBUSTNESS}"),
            ylabel=f"{scope} ROC-AUC",
            formats=formats,
        )
    return written


__all__ = ["HEATMAP", "ROBUSTNESS", "ROC", "ROC_LOG", "Sweep", "board_figures", "sweeps"]
