"""The figures of one protocol, from its board: the ROC-AUC heatmap (with intervals), ROC curves on a linear
and a logarithmic false-positive axis, and robustness curves over perturbation sweeps.

Robustness curves follow the sweeps found among the perturbation keys (:mod:`.sweeps`), after the clean
condition. File names are ``<protocol slug>-<figure>.<format>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import plots
from .board import GROUP_TITLES, ProtocolBoard
from .sweeps import find_sweeps
from .text import condition, slug

HEATMAP, ROC, ROC_LOG, ROBUSTNESS = "auc", "roc", "roc-log", "robustness"


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
    found = find_sweeps(board.perturbations, board.clean) if extended else []
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


__all__ = ["HEATMAP", "ROBUSTNESS", "ROC", "ROC_LOG", "board_figures"]
