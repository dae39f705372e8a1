"""Plots and a Markdown summary of a frozen-feature grid, and t-SNE / PCA pictures of features.

Summary numbers come from the result store's rows (AUC computed by :mod:`dfzoo.benchmark.metrics`): each
grid cell is the mean AUC over the test generators of one (train set, test set, train transform, backbone,
reduction, classifier, test transform). Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfzoo.benchmark.leaderboard import current_configurations
from dfzoo.benchmark.store import OK, ResultStore

from .grid import read_cells

if TYPE_CHECKING:
    from dfzoo.registry import Registry

AXES = ("classifier", "backbone", "reduction", "train_transform", "test_transform")
CLEAN = "none"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


# -- rows -> cells -----------------------------------------------------------------------------------------
def grid_cells(store_dir: str | Path, grid: str | None = None) -> list[dict[str, Any]]:
    """One record per grid cell (AUC averaged over its test generators), from the latest ``ok`` rows."""
    cells_map = read_cells(store_dir)
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in current_configurations(ResultStore(store_dir).rows())[0]:
        where = cells_map.get(str(row.get("protocol")))
        if row.get("status") != OK or where is None or (grid is not None and where.get("grid") != grid):
            continue
        auc = (row.get("metrics") or {}).get("auc")
        if not isinstance(auc, (int, float)) or not math.isfinite(auc):
            continue
        params = row.get("params") or {}
        backbone = params.get("backbone")
        backbone = "+".join(backbone) if isinstance(backbone, list) else str(backbone)
        key = (
            where["grid"],
            where["train_set"],
            where["test_set"],
            where["train_transform"],
            backbone,
            str(params.get("reduction")),
            str(params.get("classifier")),
            str(row.get("test_perturbation")),
        )
        groups[key].append(float(auc))
    names = (
        "grid",
        "train_set",
        "test_set",
        "train_transform",
        "backbone",
        "reduction",
        "classifier",
        "test_transform",
    )
    return [
        dict(zip(names, key, strict=True)) | {"auc": float(np.mean(values)), "n_generators": len(values)}
        for key, values in sorted(groups.items())
    ]


def mean_by(cells: Sequence[Mapping[str, Any]], axis: str) -> dict[str, tuple[float, float, int]]:
    """``value -> (mean AUC, standard deviation, count)`` over every cell, grouped by one axis."""
    groups: dict[str, list[float]] = defaultdict(list)
    for cell in cells:
        groups[str(cell[axis])].append(cell["auc"])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def cross_matrix(cells: Sequence[Mapping[str, Any]], reducer: str = "mean") -> tuple[list[str], list[str], np.ndarray]:
    """Train set x test set AUC over clean cells (no train or test transform): mean or max over probes."""
    clean = [c for c in cells if c["train_transform"] == CLEAN and c["test_transform"] == CLEAN] or list(cells)
    trains = sorted({c["train_set"] for c in clean})
    tests = sorted({c["test_set"] for c in clean})
    matrix = np.full((len(trains), len(tests)), np.nan)
    for i, train in enumerate(trains):
        for j, test in enumerate(tests):
            values = [c["auc"] for c in clean if c["train_set"] == train and c["test_set"] == test]
            if values:
                matrix[i, j] = np.max(values) if reducer == "max" else np.mean(values)
    return trains, tests, matrix


# -- plots -----------------------------------------------------------------------------------------------
def axis_plot(cells: Sequence[Mapping[str, Any]], axis: str, path: Path, title: str = "") -> Path:
    """Mean AUC by one axis (bars), with every cell's AUC as a dot so the spread stays visible."""
    plt = _pyplot()
    stats = sorted(mean_by(cells, axis).items(), key=lambda item: -item[1][0])
    labels = [k for k, _ in stats]
    means = np.array([s[0] for _, s in stats])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(labels) + 2), 3.4))
    ax.bar(range(len(labels)), means, color="#9ecae1", edgecolor="#3182bd")
    rng = np.random.default_rng(0)
    for x, label in enumerate(labels):
        values = [c["auc"] for c in cells if str(c[axis]) == label]
        ax.scatter(x + rng.uniform(-0.25, 0.25, len(values)), values, s=5, color="#08306b", alpha=0.35, linewidths=0)
        ax.text(x, 0.03, f"{means[x]:.3f}", ha="center", fontsize=7, color="#08306b")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("AUC (bar = mean, dots = cells)")
    ax.set_title(title or f"AUC by {axis.replace('_', ' ')}", fontsize=10)
    return _save(fig, path)


def heatmap(
    rows: Sequence[str], columns: Sequence[str], values: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str
) -> Path:
    """An annotated AUC heat map (0.5 = chance in the middle of the colour scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 2.5, 0.8 * len(rows) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for i in range(len(rows)):
        for j in range(len(columns)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="AUC")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def transform_matrix(cells: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str], np.ndarray]:
    """Train transform x test transform mean AUC over every other axis."""
    trains = sorted({c["train_transform"] for c in cells}, key=lambda t: (t != CLEAN, t))
    tests = sorted({c["test_transform"] for c in cells}, key=lambda t: (t != CLEAN, t))
    matrix = np.full((len(trains), len(tests)), np.nan)
    for i, train in enumerate(trains):
        for j, test in enumerate(tests):
            values = [c["auc"] for c in cells if c["train_transform"] == train and c["test_transform"] == test]
            if values:
                matrix[i, j] = np.mean(values)
    return trains, tests, matrix


def summary_plots(store_dir: str | Path, out_dir: str | Path, grid: str | None = None) -> list[Path]:
    """AUC by classifier / backbone / reduction / transform, and the cross-set and transform heat maps."""
    cells = grid_cells(store_dir, grid)
    if not cells:
        return []
    out = Path(out_dir)
    written = [axis_plot(cells, axis, out / f"auc-by-{axis.replace('_', '-')}.png") for axis in AXES]
    for reducer in ("mean", "max"):
        trains, tests, matrix = cross_matrix(cells, reducer)
        title = ("mean AUC over probes" if reducer == "mean" else "best probe's AUC") + " (clean train and test)"
        written.append(heatmap(trains, tests, matrix, out / f"cross-{reducer}.png", title, "test set", "train set"))
    trains, tests, matrix = transform_matrix(cells)
    written.append(
        heatmap(
            trains,
            tests,
            matrix,
            out / "transforms.png",
            "mean AUC by train x test transform",
            "test transform",
            "train transform",
        )
    )
    return written


def grid_report(
    store_dir: str | Path, out_dir: str | Path, grid: str | None = None, top: int = 15, plots: bool = True
) -> Path | None:
    """``grid.md`` (tables by axis, best probes, cross-set matrix) with the summary plots beside it."""
    from tabulate import tabulate

    cells = grid_cells(store_dir, grid)
    if not cells:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = summary_plots(store_dir, out / "grid-plots", grid) if plots else []
    lines = [
        f"# Frozen-feature grid{f' {grid}' if grid else ''}",
        "",
        f"{len(cells)} cells (mean AUC over each cell's test generators), from `{store_dir}`.",
        "",
    ]
    for axis in AXES:
        stats = sorted(mean_by(cells, axis).items(), key=lambda item: -item[1][0])
        table = [[k, f"{m:.3f}", f"{s:.3f}", n] for k, (m, s, n) in stats]
        lines += [
            f"## By {axis.replace('_', ' ')}",
            "",
            tabulate(table, headers=[axis, "mean AUC", "std", "cells"], tablefmt="github"),
            "",
        ]
    probes: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for cell in cells:
        probes[(cell["backbone"], cell["reduction"], cell["classifier"])].append(cell["auc"])
    ranked = sorted(probes.items(), key=lambda item: -float(np.mean(item[1])))[:top]
    lines += [
        f"## Best {min(top, len(probes))} probes (mean over sets and transforms)",
        "",
        tabulate(
            [[b, r, c, f"{np.mean(v):.3f}", f"{np.min(v):.3f}", len(v)] for (b, r, c), v in ranked],
            headers=["backbone", "reduction", "classifier", "mean AUC", "worst AUC", "cells"],
            tablefmt="github",
        ),
        "",
    ]
    trains, tests, matrix = cross_matrix(cells)
    lines += [
        "## Train set x test set (mean AUC over probes, clean)",
        "",
        tabulate(
            [[t, *[f"{v:.3f}" if np.isfinite(v) else "–" for v in row]] for t, row in zip(trains, matrix, strict=True)],
            headers=["train \\ test", *tests],
            tablefmt="github",
        ),
        "",
    ]
    for path in written:
        lines += [f"![{path.stem}](grid-plots/{path.name})", ""]
    report = out / "grid.md"
    report.write_text("\n".join(lines))
    return report


# -- feature pictures ------------------------------------------------------------------------------------
def feature_plots(
    features: np.ndarray,
    labels: Sequence[int],
    generators: Sequence[str],
    out_prefix: str | Path,
    title: str = "",
    seed: int = 0,
    methods: Sequence[str] = ("pca", "tsne"),
) -> list[Path]:
    """2-D PCA and t-SNE of ``features``, each with two panels: coloured by label and by generator.

    Rows with non-finite features (undecodable images) are dropped. Writes ``<prefix>-pca.png`` and
    ``<prefix>-tsne.png``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    plt = _pyplot()
    features = np.asarray(features, dtype=np.float64)
    keep = np.isfinite(features).all(axis=1)
    features = features[keep]
    labels = np.asarray(labels)[keep]
    kept_generators = np.asarray(generators, dtype=object)[keep]
    if len(features) < 3:
        raise ValueError(f"need at least 3 decodable samples to plot, got {len(features)}")
    scaled = StandardScaler().fit_transform(features)
    written = []
    for method in methods:
        if method == "pca":
            points = PCA(n_components=2, random_state=seed).fit_transform(scaled)
        elif method == "tsne":
            reduced = PCA(n_components=min(50, *scaled.shape), random_state=seed).fit_transform(scaled)
            perplexity = float(max(2.0, min(30.0, (len(reduced) - 1) / 3)))
            points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
        else:
            raise ValueError(f"unknown projection {method!r}: pca or tsne")
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
        for name, value, colour in (("real", 0, "#2b8cbe"), ("fake", 1, "#e34a33")):
            mask = labels == value
            axes[0].scatter(points[mask, 0], points[mask, 1], s=9, alpha=0.7, c=colour, label=name)
        axes[0].set_title("by label", fontsize=9)
        groups = sorted(set(kept_generators.tolist()))
        cmap = plt.get_cmap("tab20" if len(groups) > 10 else "tab10")
        for index, group in enumerate(groups):
            mask = kept_generators == group
            axes[1].scatter(points[mask, 0], points[mask, 1], s=9, alpha=0.7, color=cmap(index % cmap.N), label=group)
        axes[1].set_title("by generator", fontsize=9)
        for ax in axes:
            ax.legend(fontsize=7, markerscale=1.5, loc="best")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{title} ({'PCA' if method == 'pca' else 't-SNE'})", fontsize=10)
        written.append(_save(fig, Path(f"{out_prefix}-{method}.png")))
    return written


def grid_feature_plots(
    grid: Any,
    out_dir: str | Path,
    registry: Registry | None = None,
    max_per_group: int = 150,
    progress: bool = False,
    device: str | None = None,
) -> list[Path]:
    """PCA and t-SNE of every available backbone's features over the grid's sets (clean images).

    Fakes are grouped as ``<set>/<generator>``, every real as ``real``; each group contributes at most
    ``max_per_group`` images (the first in the dataset's order). Features come from the shared cache the
    grid run filled.
    """
    from dfzoo.detector import RunContext
    from dfzoo.plugins.detectors._probe.sources import BackboneSet
    from dfzoo.registry import current_registry, use_registry

    from .grid import available_backbones, open_set

    registry = registry or current_registry()
    with use_registry(registry):
        chosen: dict[Any, tuple[Any, str]] = {}
        counts: dict[str, int] = defaultdict(int)
        for sample_set in grid.sets.values():
            index = open_set(grid, sample_set, registry)
            wanted = set(index.generators() if sample_set.generators == "all" else sample_set.generators)
            for sample in index.samples:
                if sample.label == 1 and sample.generator in wanted:
                    group = f"{sample_set.name}/{sample.generator}"
                elif sample.label == 0 and (sample.generator in wanted or sample.generator in ("", "real")):
                    group = "real"
                else:
                    continue
                key = sample.path if sample.path is not None else id(sample)
                if key in chosen or counts[group] >= max_per_group:
                    continue
                counts[group] += 1
                chosen[key] = (sample, group)
        samples = list(chosen.values())
        backbones, _ = available_backbones(grid, registry)
        context = RunContext(
            preprocess=grid.preprocess, seed=grid.seed, progress=progress, device=device, batch_size=grid.batch_size
        )
        written = []
        for backbone in backbones:
            features = BackboneSet(backbone, device=device).extract([s for s, _ in samples], context)
            slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in backbone)
            written += feature_plots(
                features.vectors,
                [s.label for s, _ in samples],
                [g for _, g in samples],
                Path(out_dir) / f"features-{slug}",
                title=f"{backbone} features",
                seed=grid.seed,
            )
    return written


__all__ = [
    "AXES",
    "axis_plot",
    "cross_matrix",
    "feature_plots",
    "grid_cells",
    "grid_feature_plots",
    "grid_report",
    "heatmap",
    "mean_by",
    "summary_plots",
    "transform_matrix",
]
