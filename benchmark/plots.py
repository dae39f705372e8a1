"""Leaderboard figures (matplotlib, Agg backend): an AUC heatmap and ROC curves per protocol.

The figures only draw numbers computed by :mod:`dfzoo.benchmark.metrics`; nothing here reads scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def auc_heatmap(
    title: str,
    detectors: Sequence[str],
    generators: Sequence[str],
    values: np.ndarray,
    path: Path,
    seen: Sequence[str] = (),
    mean: Sequence[float] | None = None,
    mean_label: str = "mean",
) -> Path:
    """Detectors x test generators, coloured red (0) - yellow (0.5, chance) - green (1), values written in.

    ``seen`` generators (used in training) get a marker in their column label; ``mean`` adds a last column
    titled ``mean_label`` (a NaN mean, e.g. one with a generator missing, is drawn grey with a dash).
    """
    plt = _pyplot()
    columns = [f"{g}\n(train)" if g in seen else g for g in generators]
    grid = np.asarray(values, dtype=float)
    if mean is not None:
        columns.append(mean_label.replace(" ", "\n", 1))
        grid = np.column_stack([grid, np.asarray(mean, dtype=float)])
    height = 1.4 + 0.42 * len(detectors)
    width = 2.8 + 1.05 * len(columns) + 0.06 * max((len(d) for d in detectors), default=0)
    fig, ax = plt.subplots(figsize=(width, height))
    masked = np.ma.masked_invalid(grid)
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#dddddd")
    image = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, fontsize=8)
    ax.set_yticks(range(len(detectors)), labels=list(detectors), fontsize=8)
    ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid[i, j]
            text = "–" if not math.isfinite(value) else f"{value:.3f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="black" if not math.isfinite(value) or 0.2 < value < 0.85 else "white",
            )
    if mean is not None:
        ax.axvline(grid.shape[1] - 1.5, color="white", linewidth=3)
    ax.set_title(title, fontsize=10, pad=12)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="ROC-AUC")
    fig.tight_layout()
    return _save(fig, path)


def roc_grid(
    title: str,
    curves: Mapping[str, Sequence[tuple[str, np.ndarray, np.ndarray, float]]],
    path: Path,
    seen: Sequence[str] = (),
) -> Path:
    """One panel per test generator; in each, one ROC curve per detector ``(label, fpr, tpr, auc)``."""
    plt = _pyplot()
    panels = list(curves)
    columns = min(3, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    labels = sorted({label for panel in curves.values() for label, *_ in panel})
    legend_columns = max(1, min(len(labels), 3 if columns < 3 else 4))
    legend_height = 0.28 * math.ceil(len(labels) / legend_columns) + 0.2
    fig, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.3 * rows + legend_height), squeeze=False)
    palette = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colours = {label: palette(i % palette.N) for i, label in enumerate(labels)}
    for ax, generator in zip(axes.flat, panels, strict=False):  # the grid may hold more axes than panels
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
        lines, aucs = [], []
        for label, fpr, tpr, auc in curves[generator]:
            lines.extend(ax.plot(fpr, tpr, color=colours[label], linewidth=1.4))
            aucs.append(f"AUC {auc:.3f}")
        if lines:  # colours name the detectors (figure legend); each panel lists their AUCs
            ax.legend(lines, aucs, fontsize=6, loc="lower right", frameon=False, handlelength=1.2)
        ax.set_title(f"{generator}{' (train)' if generator in seen else ''}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.set_ylabel("true positive rate", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[label], linewidth=2) for label in labels]
    fig.legend(handles, labels, loc="lower center", ncol=legend_columns, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, 0.97))
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path


__all__ = ["auc_heatmap", "roc_grid"]
