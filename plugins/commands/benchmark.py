"""Benchmark sub-commands: ``dfzoo run`` (protocols -> result store -> leaderboard) and ``dfzoo leaderboard``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dfzoo import CommandSpec, hookimpl

DEFAULT_STORE = Path("runs") / "default"
DEFAULT_LEADERBOARD = Path("leaderboard")


# -- run -------------------------------------------------------------------------------------------------
def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run benchmark protocols into a result store (resumable: finished rows are kept), then "
        "render the leaderboard. With no options: the default protocols on the built-in zoo. "
        "Quick flags build a protocol from --dataset, or override the protocols' settings."
    )
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"result store (default {DEFAULT_STORE})")
    parser.add_argument(
        "--leaderboard-dir",
        type=Path,
        default=DEFAULT_LEADERBOARD,
        help=f"where the leaderboard goes (default {DEFAULT_LEADERBOARD})",
    )
    parser.add_argument("--no-leaderboard", action="store_true", help="do not render the leaderboard")
    parser.add_argument(
        "--protocol", action="append", type=Path, default=[], metavar="FILE", help="protocol TOML file (repeatable)"
    )
    quick = parser.add_argument_group("quick flags (override protocol settings)")
    quick.add_argument("--dataset", metavar="PATH|NAME", help="dataset folder/manifest or registered name")
    quick.add_argument("--layout", help="dataset layout (detected when absent)")
    quick.add_argument("--name", help="protocol name for a --dataset run (default cli-<dataset>)")
    quick.add_argument("--train", metavar="G1,G2|all", help="training generators")
    quick.add_argument("--test", metavar="G3,G4|all", help="test generators")
    quick.add_argument("--detector", action="append", default=[], metavar="NAME", help="detector (repeatable)")
    quick.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="detector parameter applied to every chosen detector (repeatable)",
    )
    quick.add_argument("--preprocess", choices=["resize", "center_crop", "shortest_side"], help="preprocessing policy")
    quick.add_argument("--size", type=int, help="input size for the preprocessing policy (default: the model's)")
    quick.add_argument("--seed", type=int, help="seed for splits, bootstrap and training")
    quick.add_argument("--cap", type=int, metavar="N", help="at most N samples per generator and label")
    quick.add_argument(
        "--perturb",
        action="append",
        default=[],
        metavar="KEY",
        help='test perturbation, e.g. none, "jpeg:quality=75" (repeatable)',
    )
    quick.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap replicates for intervals (0 = none)")
    quick.add_argument("--offline-only", action="store_true", help="skip detectors whose weights are not here")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 even when some rows are errors (batch use); by default such a run exits 1",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_protocols(args: argparse.Namespace) -> list[Any]:
    """The protocols ``dfzoo run`` will run: files, or one from --dataset, or the defaults; flags override."""
    from dfzoo.benchmark.protocol import (
        ANY_DETECTOR,
        DetectorEntry,
        default_protocols,
        load_protocol,
        parse_generators,
        parse_params,
        protocol_from_flags,
    )
    from dfzoo.transforms import PreprocessPolicy

    params = parse_params(args.param)
    if args.protocol:
        protocols = [load_protocol(path) for path in args.protocol]
    elif args.dataset:
        protocols = [
            protocol_from_flags(
                dataset=args.dataset,
                name=args.name,
                layout=args.layout,
                train=args.train or "all",
                test=args.test or "all",
                detectors=args.detector,
                params=params,
            )
        ]
    else:
        protocols = default_protocols()
    changes: dict[str, Any] = {}
    if args.dataset and args.protocol:
        changes["dataset"] = args.dataset
    if args.layout:
        changes["layout"] = args.layout
    if args.train:
        changes["train_generators"] = parse_generators(args.train, "--train")
    if args.test:
        changes["test_generators"] = parse_generators(args.test, "--test")
    if args.detector or args.param:
        changes["detectors"] = tuple(DetectorEntry(name, params) for name in args.detector or [ANY_DETECTOR])
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.cap is not None:
        changes["cap_per_class"] = args.cap
    if args.perturb:
        changes["perturbations"] = tuple(dict.fromkeys(args.perturb))
    if args.bootstrap is not None:
        changes["bootstrap"] = args.bootstrap
    if args.offline_only:
        changes["offline_only"] = True
    out = []
    for protocol in protocols:
        local = dict(changes)
        if args.preprocess or args.size:
            local["preprocess"] = PreprocessPolicy(
                args.preprocess or protocol.preprocess.mode, args.size or protocol.preprocess.size
            )
        out.append(protocol.replace(**local) if local else protocol)
    return out


def _run(args: argparse.Namespace) -> int:
    from dfzoo.benchmark.harness import run_benchmark
    from dfzoo.benchmark.leaderboard import render_leaderboard, summary_table
    from dfzoo.cli import writable_dir

    writable_dir(args.store, "--store")
    if not args.no_leaderboard:
        writable_dir(args.leaderboard_dir, "--leaderboard-dir")
    protocols = build_protocols(args)
    print(
        f"running {len(protocols)} protocol(s) ({', '.join(p.name for p in protocols)}) into {args.store}",
        file=sys.stderr,
    )
    summary = run_benchmark(protocols, args.store, progress=not args.quiet, device=args.device)
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    print()
    print(summary_table(args.store, [p.name for p in protocols]))
    print()
    print(
        f"{summary.jobs_run} job(s) run, {summary.jobs_complete} already complete; rows written: "
        f"{summary.rows_ok} ok, {summary.rows_error} error, {summary.rows_skipped} skipped "
        f"({summary.seconds:.1f} s). Store: {args.store}"
    )
    if not args.no_leaderboard:
        written = render_leaderboard(args.store, args.leaderboard_dir)
        print(f"leaderboard: {written[0]} (+{len(written) - 1} files)")
    return report_errors(summary.rows, args.keep_going)


def report_errors(rows: list[dict[str, Any]], keep_going: bool) -> int:
    """Print where a run's error rows are (per protocol and detector: how many, and the first message) and
    return the exit code: 1 when there are any, unless ``keep_going``."""
    from dfzoo.benchmark.store import ERROR
    from dfzoo.cli import EXIT_ROWS_FAILED

    failed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") == ERROR:
            failed.setdefault((row.get("protocol", "?"), row.get("label", "?")), []).append(row)
    if not failed:
        return 0
    total = sum(len(group) for group in failed.values())
    print(f"{total} error row(s) from {len(failed)} detector(s); a re-run retries them:", file=sys.stderr)
    for (protocol, label), group in failed.items():
        error = group[0].get("error") or {}
        message = (str(error.get("message", "")).strip().splitlines() or [""])[0][:300]
        print(
            f"  {protocol} / {label}: {len(group)} row(s); {error.get('stage', '?')}: "
            f"{error.get('type', 'Error')}: {message}",
            file=sys.stderr,
        )
    return 0 if keep_going else EXIT_ROWS_FAILED


# -- leaderboard -----------------------------------------------------------------------------------------
def _leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"result store (default {DEFAULT_STORE})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_LEADERBOARD, help=f"output folder (default {DEFAULT_LEADERBOARD})"
    )
    parser.add_argument("--title", default="dfzoo leaderboard", help="title of the Markdown page")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--check",
        action="store_true",
        help="render nothing: recompute the metrics of every ok row from its stored per-image scores "
        "and exit non-zero listing the rows that differ or have no scores",
    )


def _leaderboard(args: argparse.Namespace) -> int:
    from dfzoo.benchmark.leaderboard import render_leaderboard
    from dfzoo.benchmark.store import ResultStore

    if not ResultStore(args.store).results.exists():
        raise FileNotFoundError(
            f"no results in {args.store} (expected {ResultStore(args.store).results}); run `dfzoo run` first"
        )
    if args.check:
        from dfzoo.benchmark.check import TOLERANCE, check_store

        report = check_store(args.store)
        for problem in report.problems:
            print(problem, file=sys.stderr)
        if not report.ok:
            print(
                f"dfzoo leaderboard: error: {len(report.problems)} of {report.rows_checked} ok row(s) in "
                f"{args.store} do not match their stored scores",
                file=sys.stderr,
            )
            return 1
        print(
            f"{report.rows_checked} ok row(s) in {args.store}: every metric recomputed from the stored scores "
            f"matches (tolerance {TOLERANCE:g})"
        )
        return 0
    for path in render_leaderboard(args.store, args.out, title=args.title, plots=not args.no_plots):
        print(path)
    return 0


@hookimpl
def dfzoo_commands():
    yield CommandSpec(
        name="run",
        summary="Run benchmark protocols (default: the zoo) and render the leaderboard",
        add_arguments=_run_arguments,
        run=_run,
    )
    yield CommandSpec(
        name="leaderboard",
        summary="Render a result store as Markdown, CSV, JSON and plots",
        add_arguments=_leaderboard_arguments,
        run=_leaderboard,
    )
