"""``dfzoo grid``: run a frozen-feature grid (backbones x reductions x classifiers x transforms x set pairs)
through the benchmark harness, then render the leaderboard, the grid summary and feature plots."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from dfzoo import CommandSpec, hookimpl

from .benchmark import add_run_arguments, report_errors

DEFAULT_STORE = Path("runs") / "grid"
DEFAULT_OUT = Path("grid-report")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("grid", nargs="?", type=Path, help="grid TOML file (default: the built-in zoo grid)")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"result store (default {DEFAULT_STORE})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    parser.add_argument("--dry-run", action="store_true", help="print the expansion (protocols, cells) and stop")
    axes = parser.add_argument_group("override the grid's axes (repeatable)")
    axes.add_argument("--backbone", action="append", default=[], help='e.g. efficientnet_lite0 or "a+b"')
    axes.add_argument("--reduction", action="append", default=[], help="none, pca, ae")
    axes.add_argument("--classifier", action="append", default=[], help="bagging ... nb, or all")
    axes.add_argument("--train-transform", action="append", default=[], help="none, blur, jitter, blur_jitter, jpeg")
    axes.add_argument("--test-transform", action="append", default=[], help="none, blur, jitter, blur_jitter, jpeg")
    axes.add_argument("--cap", type=int, metavar="N", help="at most N images per generator and label per side")
    axes.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap replicates (0 = none)")
    parser.add_argument("--no-leaderboard", action="store_true", help="do not render the full leaderboard")
    parser.add_argument("--no-plots", action="store_true", help="no PNG plots at all")
    parser.add_argument("--no-feature-plots", action="store_true", help="skip the t-SNE / PCA feature plots")
    add_run_arguments(parser, "cells fail")


def build_grid(args: argparse.Namespace) -> Any:
    """The grid file (or the default grid) with the command line's axis overrides, re-validated."""
    from dfzoo.plugins.detectors._probe.grid import default_grid, load_grid, parse_grid

    grid = load_grid(args.grid) if args.grid else default_grid()
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("backbone", "backbones"),
        ("reduction", "reductions"),
        ("classifier", "classifiers"),
        ("train_transform", "train_transforms"),
        ("test_transform", "test_transforms"),
    ):
        values = getattr(args, flag)
        if values:
            overrides[key] = "all" if values == ["all"] else list(dict.fromkeys(values))
    if args.cap is not None:
        overrides["cap_per_class"] = args.cap
    if args.bootstrap is not None:
        overrides["bootstrap"] = args.bootstrap
    if not overrides:
        return grid
    data = _grid_data(grid) | overrides
    for axis, key in (("reductions", "reduction_options"), ("classifiers", "classifier_options")):
        if isinstance(data[axis], list):  # options of parts the command line left out are not an error
            data[key] = {k: v for k, v in data[key].items() if k in data[axis]}
    return parse_grid(
        data, source=str(args.grid or "default grid") + " (with command-line overrides)", base_dir=grid.base_dir
    )


def _grid_data(grid: Any) -> dict[str, Any]:
    """A parsed grid back as TOML-shaped data (so overrides go through the same validation)."""
    data = {f.name: getattr(grid, f.name) for f in dataclasses.fields(grid) if f.name not in ("base_dir",)}
    data["sets"] = {
        name: {
            "dataset": s.dataset,
            "generators": s.generators if isinstance(s.generators, str) else list(s.generators),
            "dataset_params": dict(s.dataset_params),
        }
        | ({"layout": s.layout} if s.layout else {})
        for name, s in grid.sets.items()
    }
    data["pairs"] = [list(p) for p in grid.pairs]
    size = grid.preprocess.size
    data["preprocess"] = {"mode": grid.preprocess.mode} | ({"size": size} if size else {})
    for key in ("backbones", "reductions", "classifiers", "train_transforms", "test_transforms"):
        data[key] = list(data[key])
    return data


def _run(args: argparse.Namespace) -> int:
    """Run a frozen-feature probe grid (backbones x reductions x classifiers x transforms x dataset pairs)
    and report it.


    Expand a grid TOML file (default: the built-in zoo grid) into benchmark protocols of `probe` cells, run them
    into a result store (resumable), and write the leaderboard, grid.md with summary plots, and t-SNE/PCA
    feature plots.
    """
    from dfzoo.plugins.detectors._probe.grid import expand_grid, run_grid

    grid = build_grid(args)
    if args.dry_run:
        cells, notes = expand_grid(grid, workdir=args.store / "grid-manifests")
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        for cell in cells:
            p = cell.protocol
            print(
                f"{p.name}: dataset {p.dataset}; train {_names(p.train_generators)} "
                f"({p.train_perturbation}); test {_names(p.test_generators)} under {', '.join(p.perturbations)}; "
                f"{len(p.detectors)} probes"
            )
        probes = len(cells[0].protocol.detectors) if cells else 0
        print(
            f"{len(cells)} protocol(s) x {probes} probe(s) = {len(cells) * probes} fits; "
            f"{len(cells) * probes * len(grid.test_transforms)} (cell, test transform) results per test generator"
        )
        return 0
    from dfzoo.benchmark.executor import make_executor
    from dfzoo.cli import writable_dir
    from dfzoo.device import pick_device

    executor = make_executor(args.executor, address=args.address, workers=args.workers)
    if executor is None:  # a cluster's devices are checked by its executor when the run is planned
        pick_device(args.device)
    writable_dir(args.store, "--store")
    writable_dir(args.out, "--out")
    print(
        f"grid {grid.name}: {len(grid.pairs)} pair(s) x {len(grid.train_transforms)} train transform(s) x "
        f"{len(grid.backbones)} backbone(s) x {len(grid.reductions)} reduction(s) x {len(grid.classifiers)} "
        f"classifier(s) x {len(grid.test_transforms)} test transform(s) into {args.store}",
        file=sys.stderr,
    )
    summary, notes = run_grid(grid, args.store, progress=not args.quiet, device=args.device, executor=executor)
    for note in [*notes, *summary.notes]:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"{summary.jobs_run} job(s) run, {summary.jobs_complete} already complete; rows written: "
        f"{summary.rows_ok} ok, {summary.rows_error} error, {summary.rows_skipped} skipped "
        f"({summary.seconds:.1f} s). Store: {args.store}"
    )
    _report(args, grid)
    return report_errors(summary.rows, args.keep_going)


def _report(args: argparse.Namespace, grid: Any) -> None:
    from dfzoo.benchmark.leaderboard import render_leaderboard
    from dfzoo.plugins.detectors._probe.grid_plots import grid_feature_plots, grid_report

    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_leaderboard:
        written = render_leaderboard(args.store, args.out, title=f"dfzoo grid {grid.name}", plots=not args.no_plots)
        print(f"leaderboard: {written[0]}")
    report = grid_report(args.store, args.out, grid=grid.name, plots=not args.no_plots)
    if report is not None:
        print(f"grid summary: {report}")
    if not args.no_plots and not args.no_feature_plots:
        for path in grid_feature_plots(grid, args.out / "grid-plots", progress=not args.quiet, device=args.device):
            print(f"feature plot: {path}")


def _names(value: Any) -> str:
    return value if isinstance(value, str) else ",".join(value)


@hookimpl
def dfzoo_commands():
    yield CommandSpec(name="grid", add_arguments=_arguments, run=_run)
