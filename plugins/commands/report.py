"""Report sub-commands: ``dfzoo report`` (a store as one static HTML page with figures and exports) and
``dfzoo compare`` (two stores, or two detectors of one store, cell by cell with paired tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfzoo import CommandSpec, hookimpl

DEFAULT_STORE = Path("runs") / "default"


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"result store (default {DEFAULT_STORE})")
    parser.add_argument("--out", type=Path, required=True, help="output folder (report.html goes there)")
    parser.add_argument("--title", default="dfzoo report", help="title of the page")


def _report(args: argparse.Namespace) -> int:
    """Render a result store as a static HTML report (+ PNG/SVG/PDF figures, Parquet scores, LaTeX tables).

    Render a result store as one self-contained HTML page (report.html: overview, heatmaps, ROC and robustness
    curves, error browser, provenance) with its figures as PNG/SVG/PDF, the per-image scores as Parquet and the
    tables as LaTeX. Works offline from file://.
    """
    from dfzoo.benchmark.report import render_report
    from dfzoo.benchmark.results import load_results
    from dfzoo.cli import writable_dir

    _require_store(args.store)
    writable_dir(args.out, "--out")
    written = render_report(load_results(args.store), args.out, title=args.title)
    print(f"report: {written[0]} (+{len(written) - 1} files)")
    return 0


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store_a", type=Path, metavar="STORE_A", help="baseline result store")
    parser.add_argument("store_b", type=Path, metavar="STORE_B", nargs="?", help="candidate result store")
    parser.add_argument(
        "--detector",
        action="append",
        default=[],
        metavar="NAME",
        help="give twice (A, then B) to compare two detectors of STORE_A: a label, a shown name or a detector name",
    )
    parser.add_argument("--protocol", action="append", metavar="NAME", help="only these protocols (repeatable)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--out", type=Path, help="also write the comparison as DIR/compare.html")


def _compare(args: argparse.Namespace) -> int:
    """Compare two stores (or two detectors) per cell with paired tests (DeLong, paired bootstrap).

    Compare ROC-AUC cell by cell on the same images: two stores (A = baseline, B = candidate; cells matched by
    protocol, detector, generator and perturbation) or, with --detector twice, two detectors of one store. Each
    cell gets B - A, a paired-bootstrap 95% interval and DeLong's test (Holm-adjusted).
    """
    from dfzoo.benchmark.compare import compare_detectors, compare_stores
    from dfzoo.cli import writable_dir

    if args.bootstrap <= 0:
        raise ValueError(f"--bootstrap must be positive, got {args.bootstrap}")
    if args.out:
        writable_dir(args.out, "--out")
    for store in (args.store_a, args.store_b):
        if store is not None:
            _require_store(store)
    if args.store_b is not None and not args.detector:
        comparison = compare_stores(
            args.store_a, args.store_b, protocols=args.protocol, n_bootstrap=args.bootstrap, seed=args.seed
        )
    elif args.store_b is None and len(args.detector) == 2:
        comparison = compare_detectors(
            args.store_a, *args.detector, protocols=args.protocol, n_bootstrap=args.bootstrap, seed=args.seed
        )
    else:
        raise ValueError("give two stores (STORE_A STORE_B), or one store and --detector twice (A, then B)")
    if not comparison.cells:
        raise ValueError("nothing to compare: no cell (protocol, detector, generator, perturbation) is on both sides")
    print(comparison.table())
    if args.out:
        print(f"compare: {comparison.write_html(args.out)}", file=sys.stderr)
    return 0


def _require_store(store: Path) -> None:
    from dfzoo.benchmark.store import ResultStore

    if not ResultStore(store).results.exists():
        raise FileNotFoundError(f"no results in {store} (expected {ResultStore(store).results}); run `dfzoo run` first")


@hookimpl
def dfzoo_commands():
    yield CommandSpec(name="report", add_arguments=_report_arguments, run=_report)
    yield CommandSpec(name="compare", add_arguments=_compare_arguments, run=_compare)
