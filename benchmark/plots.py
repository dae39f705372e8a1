"""Leaderboard and report figures (matplotlib, Agg backend): AUC heatmaps with intervals, ROC curves (linear
and log false-positive rate), robustness curves with interval bands.

Figures are made for papers as well as pages: a colour-blind-safe palette (Okabe-Ito, then the same colours
dashed and dotted), a perceptually uniform colour map (cividis), legends placed below the panels with room
made for them, and each figure written as PNG plus, on request, SVG and PDF beside it (text kept as text,
no dates or random ids inside, so an unchanged figure gives the same files).

The figures only draw numbers computed by :mod:`dfzoo.benchmark.metrics`; nothing here reads scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000")
LINE_STYLES = ("solid", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))
COLOUR_MAP = "cividis"
LOG_FPR_FLOOR = 1e-3
SAVE_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
Curve = tuple[str, np.ndarray, np.ndarray, float]  # (label, fpr, tpr, auc)


@dataclass(frozen=True)
class Band:
    """One detector's curve over the points of a sweep: values with their interval ends (NaN where none)."""

    label: str
    values: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]


def _pyplot() -> Any:
    import logging

    import matplotlib

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every table at INFO
    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = "dfzoo"  # ids from content, not random: same figure, same file
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (smaller, searchable)
    matplotlib.rcParams["pdf.fonttype"] = 42
    import matplotlib.pyplot as plt

    return plt


def line_style(index: int) -> tuple[str, Any]:
    """Colour and dash of the ``index``-th series: eight Okabe-Ito colours, then the same dashed, dotted, ..."""
    return OKABE_ITO[index % len(OKABE_ITO)], LINE_STYLES[(index // len(OKABE_ITO)) % len(LINE_STYLES)]


def auc_heatmap(
    title: str,
    detectors: Sequence[str],
    generators: Sequence[str],
    values: np.ndarray,
    stem: Path,
    seen: Sequence[str] = (),
    mean: Sequence[float] | None = None,
    mean_label: str = "mean",
    intervals: np.ndarray | None = None,
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """Detectors x test generators coloured on a colour-blind-safe scale from 0 to 1, values written in.

    ``seen`` generators (used in training) get a marker in their column label; ``mean`` adds a last column
    titled ``mean_label`` (a NaN mean, e.g. one with a generator missing, is drawn grey with a dash).
    ``intervals`` (rows x columns x 2, the mean column included when there is one) writes each 95% interval
    under its value. Returns the files written (one per format).
    """
    plt = _pyplot()
    columns = [f"{g}\n(train)" if g in seen else g for g in generators]
    grid = np.asarray(values, dtype=float).reshape(len(detectors), len(generators))
    if mean is not None:
        columns.append(mean_label.replace(" ", "\n", 1))
        grid = np.column_stack([grid, np.asarray(mean, dtype=float)])
    bounds = None if intervals is None else np.asarray(intervals, dtype=float).reshape(*grid.shape, 2)
    row_height = 0.62 if bounds is not None else 0.42
    label_width = 0.075 * max((len(d) for d in detectors), default=0)
    height = 1.5 + row_height * len(detectors)
    width = 1.8 + label_width + 1.1 * len(columns)
    fig, ax = plt.subplots(figsize=(width, height))
    cmap = plt.get_cmap(COLOUR_MAP).with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, fontsize=8)
    ax.set_yticks(range(len(detectors)), labels=list(detectors), fontsize=8)
    ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False, length=0)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid[i, j]
            colour = "black" if not math.isfinite(value) or value > 0.55 else "white"
            if not math.isfinite(value):
                ax.text(j, i, "–", ha="center", va="center", fontsize=8, color=colour)
                continue
            low, high = (math.nan, math.nan) if bounds is None else bounds[i, j]
            if math.isfinite(low) and math.isfinite(high):
                ax.text(j, i - 0.12, f"{value:.3f}", ha="center", va="center", fontsize=8, color=colour)
                ax.text(j, i + 0.22, f"[{low:.2f}, {high:.2f}]", ha="center", va="center", fontsize=6, color=colour)
            else:
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8, color=colour)
    if mean is not None:
        ax.axvline(grid.shape[1] - 1.5, color="white", linewidth=3)
    ax.set_title(title, fontsize=10, pad=12)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="ROC-AUC")
    fig.tight_layout()
    return save(fig, stem, formats)


def roc_grid(
    title: str,
    curves: Mapping[str, Sequence[Curve]],
    stem: Path,
    seen: Sequence[str] = (),
    log_fpr: bool = False,
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """One panel per test generator; in each, one ROC curve per detector ``(label, fpr, tpr, auc)``.

    With ``log_fpr`` the false-positive axis is logarithmic from 0.1% (the low-FPR region where TPR@1%FPR is
    read, marked by a dotted line). The legend names the detectors below the panels; each panel lists AUCs.
    """
    panels = list(curves)
    labels = list(dict.fromkeys(label for panel in curves.values() for label, *_ in panel))
    fig, axes, styles, legend = _panel_grid(len(panels), labels, (3.8, 3.3))
    for ax, generator in zip(axes.flat, panels, strict=False):  # the grid may hold more axes than panels
        reference = np.logspace(math.log10(LOG_FPR_FLOOR), 0, 50) if log_fpr else np.array([0.0, 1.0])
        ax.plot(reference, reference, color="#999999", linestyle=":", linewidth=1)
        lines, aucs = [], []
        for label, fpr, tpr, auc in curves[generator]:
            colour, dash = styles[label]
            x = np.clip(fpr, LOG_FPR_FLOOR, 1.0) if log_fpr else fpr
            lines.extend(ax.plot(x, tpr, color=colour, linestyle=dash, linewidth=1.4))
            aucs.append(f"AUC {auc:.3f}")
        if lines and len(lines) <= 8:  # colours name the detectors (figure legend); each panel lists their AUCs
            ax.legend(lines, aucs, fontsize=6, loc="lower right", frameon=False, handlelength=1.5)
        ax.set_title(f"{generator}{' (train)' if generator in seen else ''}", fontsize=9)
        if log_fpr:
            ax.set_xscale("log")
            ax.set_xlim(LOG_FPR_FLOOR, 1)
            ax.axvline(0.01, color="#555555", linestyle=":", linewidth=0.8)
        else:
            ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate" + (" (log)" if log_fpr else ""), fontsize=8)
        ax.set_ylabel("true positive rate", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    return _finish(fig, axes, len(panels), styles, legend, title, stem, formats)


def robustness_curves(
    title: str,
    sweeps: Mapping[str, tuple[Sequence[str], Sequence[Band]]],
    stem: Path,
    ylabel: str = "mean ROC-AUC",
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """One panel per sweep (e.g. ``"jpeg quality"``): ``(point labels, bands)``, each band a detector's values
    with a shaded 95% interval, drawn against the sweep's points in the order given (clean first)."""
    panels = list(sweeps)
    labels = list(dict.fromkeys(band.label for _, bands in sweeps.values() for band in bands))
    fig, axes, styles, legend = _panel_grid(len(panels), labels, (4.2, 3.2))
    for ax, name in zip(axes.flat, panels, strict=False):
        points, bands = sweeps[name]
        x = np.arange(len(points))
        for band in bands:
            colour, dash = styles[band.label]
            values = np.asarray(band.values, dtype=float)
            ax.plot(x, values, color=colour, linestyle=dash, marker="o", markersize=3, linewidth=1.4)
            lows, highs = np.asarray(band.lows, dtype=float), np.asarray(band.highs, dtype=float)
            if np.isfinite(lows).any():
                ax.fill_between(x, lows, highs, color=colour, alpha=0.18, linewidth=0)
        ax.axhline(0.5, color="#999999", linestyle=":", linewidth=1)
        ax.set_xticks(x, labels=list(points), fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1.01)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    return _finish(fig, axes, len(panels), styles, legend, title, stem, formats)


@dataclass(frozen=True)
class _Legend:
    """Where a figure's legend goes: below the panels (``columns`` wide, ``height`` inches) or, for a single
    panel, to its right (``width`` inches)."""

    columns: int
    height: float
    width: float = 0.0


def _panel_grid(
    count: int, labels: Sequence[str], panel: tuple[float, float]
) -> tuple[Any, Any, dict[str, Any], _Legend]:
    """A figure of ``count`` panels (three a row) with room for a legend of ``labels`` whose longest entry fits,
    each label's line style, and where the legend goes."""
    plt = _pyplot()
    columns = min(3, max(1, count))
    rows = max(1, math.ceil(count / columns))
    entry = 0.6 + 0.075 * max((len(label) for label in labels), default=1)  # inches one legend entry needs
    if count == 1:  # one panel: a legend below would be taller than it
        legend = _Legend(1, 0.0, entry + 0.2)
    else:
        legend_columns = max(1, min(len(labels), int(panel[0] * columns // entry)))
        legend = _Legend(legend_columns, 0.26 * math.ceil(len(labels) / legend_columns) + 0.25)
    size = (panel[0] * columns + legend.width, panel[1] * rows + legend.height)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    return fig, axes, {label: line_style(i) for i, label in enumerate(labels)}, legend


def _finish(
    fig: Any,
    axes: Any,
    used: int,
    styles: Mapping[str, Any],
    legend: _Legend,
    title: str,
    stem: Path,
    formats: Sequence[str],
) -> list[Path]:
    """Blank the unused panels, add the legend (below, or right of a single panel) and the title, save."""
    plt = _pyplot()
    for ax in list(axes.flat)[used:]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colour, linestyle=dash, linewidth=2) for colour, dash in styles.values()]
    width, height = fig.get_figwidth(), fig.get_figheight()
    if legend.width:
        right = 1 - legend.width / width
        fig.legend(handles, list(styles), loc="center left", bbox_to_anchor=(right, 0.5), fontsize=8, frameon=False)
        rect = (0, 0, right, 0.96)
    else:
        fig.legend(handles, list(styles), loc="lower center", ncol=legend.columns, fontsize=8, frameon=False)
        rect = (0, legend.height / height, 1, 0.96)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=rect)
    return save(fig, stem, formats)


def save(fig: Any, stem: Path, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for each of ``formats`` (deterministic metadata) and close it."""
    plt = _pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in formats:
        target = stem.with_name(f"{stem.name}.{suffix}")
        fig.savefig(target, dpi=120, metadata=SAVE_METADATA.get(suffix))
        written.append(target)
    plt.close(fig)
    return written


__all__ = ["OKABE_ITO", "Band", "auc_heatmap", "line_style", "robustness_curves", "roc_grid", "save"]
