"""Benchmark sub-commands: ``dfzoo run`` (protocols -> result store -> leaderboard) and ``dfzoo leaderboard``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dfzoo import CommandSpec, hookimpl

DEFAULT_STORE = Path("runs") / "default"
DEFAULT_LEADERBOARD = Path("leaderboard")


# -- run -------------------------------------------------------------------------------------------------
def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=Path,
        help=f"result store (default {DEFAULT_STORE} for the default benchmark, runs/<name>/ for any other run)",
    )
    parser.add_argument(
        "--leaderboard-dir",
        type=Path,
        help=f"where the leaderboard goes (default {DEFAULT_LEADERBOARD}/ for the default benchmark, else "
        "<store>/leaderboard/: a quick run never writes over the committed leaderboard)",
    )
    parser.add_argument("--no-leaderboard", action="store_true", help="do not render the leaderboard")
    parser.add_argument(
        "--protocol", action="append", type=Path, default=[], metavar="FILE", help="protocol TOML file (repeatable)"
    )
    parser.add_argument(
        "--preset", metavar="NAME", help="a shipped protocol sized for a time budget: tiny (about two minutes)"
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
        help="detector parameter: key=value for every chosen detector that has it, "
        "name.key=value for detector name alone (wins over key=value; repeatable)",
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
        help='test perturbation, e.g. none, "jpeg:quality=75", or a sweep "jpeg:quality=90,75,50" (repeatable)',
    )
    quick.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap replicates for intervals (0 = none)")
    quick.add_argument("--offline-only", action="store_true", help="skip detectors whose weights are not here")
    add_run_arguments(parser, "rows are errors")


def add_run_arguments(parser: argparse.ArgumentParser, failures: str) -> None:
    """``--device``, where jobs run, ``--keep-going`` and ``--quiet``: what every command that runs jobs takes
    (``failures`` says what fails, for ``--keep-going``'s help)."""
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    add_executor_arguments(parser)
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help=f"exit 0 even when some {failures} (batch use); by default such a run exits 1",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--address``, ``--workers``: where the jobs of a run go (see :func:`make_executor`)."""
    from dfzoo.benchmark.executor import EXECUTORS

    cluster = parser.add_argument_group("where jobs run")
    cluster.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=os.environ.get("DFZOO_EXECUTOR", "local"),
        help="local: one job at a time in this process (default; $DFZOO_EXECUTOR); ray: jobs as Ray tasks",
    )
    cluster.add_argument("--address", help="Ray cluster to join (default $RAY_ADDRESS; none: start a local one)")
    cluster.add_argument("--workers", type=int, metavar="N", help="CPUs of a local Ray instance (default: all)")


def build_protocols(args: argparse.Namespace) -> list[Any]:
    """The protocols ``dfzoo run`` will run: files, or one from --dataset, or the defaults; flags override."""
    from dfzoo.benchmark.entries import split_params, with_command_line_params
    from dfzoo.benchmark.presets import preset_protocol
    from dfzoo.benchmark.protocol import (
        ProtocolError,
        default_protocols,
        load_protocol,
        parse_generators,
        parse_params,
        protocol_from_flags,
    )
    from dfzoo.registry import current_registry
    from dfzoo.transforms import PreprocessPolicy

    registry = current_registry()
    shared, own = split_params(parse_params(args.param), registry.names("detector"))
    if args.preset:
        protocols = [preset_protocol(args.preset), *(load_protocol(path) for path in args.protocol)]
    elif args.protocol:
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
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.cap is not None:
        changes["cap_per_class"] = args.cap
    if args.perturb:
        from dfzoo.benchmark.sweeps import expand_sweeps

        changes["perturbations"] = tuple(dict.fromkeys(expand_sweeps(args.perturb)))
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
    if shared or own or args.detector:
        out = [with_command_line_params(p, shared, own, registry, args.detector) for p in out]
    unused = sorted(set(own) - {e.name for p in out for e in p.detectors})
    if unused:
        raise ProtocolError(f"--param {unused[0]}.*: {unused[0]} is not run here (add --detector {unused[0]})")
    return out


def run_folders(args: argparse.Namespace, protocols: list[Any]) -> tuple[Path, Path]:
    """Where a run's results and leaderboard go: ``runs/default`` and ``leaderboard/`` for the default
    benchmark only; any other run (a preset, --dataset, --protocol, changed settings) gets ``runs/<name>/``
    with its leaderboard inside, so it never mixes into the default store nor overwrites the committed board."""
    from dfzoo.benchmark.protocol import default_protocols

    store = args.store
    if store is None and protocols == default_protocols():
        store = DEFAULT_STORE
    elif store is None:
        own = args.preset or "-".join(p.name for p in protocols) if args.preset or args.protocol or args.dataset else ""
        store = Path("runs") / (own or "custom")  # "custom": the default protocols with changed settings
    board = args.leaderboard_dir or (DEFAULT_LEADERBOARD if store == DEFAULT_STORE else store / "leaderboard")
    return store, board


def _run(args: argparse.Namespace) -> int:
    """Run benchmark protocols (default: the zoo) and render the leaderboard.

    Run benchmark protocols into a result store (resumable: finished rows are kept), then render the
    leaderboard. With no options: the default protocols on the built-in zoo. Quick flags build a protocol from
    --dataset, or override the protocols' settings.
    """
    from dfzoo.benchmark.harness import run_benchmark
    from dfzoo.benchmark.leaderboard import render_leaderboard, summary_table
    from dfzoo.cli import writable_dir

    protocols = build_protocols(args)
    args.store, args.leaderboard_dir = run_folders(args, protocols)
    writable_dir(args.store, "--store")
    if not args.no_leaderboard:
        writable_dir(args.leaderboard_dir, "--leaderboard-dir")
    print(
        f"running {len(protocols)} protocol(s) ({', '.join(p.name for p in protocols)}) into {args.store}",
        file=sys.stderr,
    )
    from dfzoo.benchmark.executor import make_executor

    executor = make_executor(args.executor, address=args.address, workers=args.workers)
    summary = run_benchmark(protocols, args.store, progress=not args.quiet, device=args.device, executor=executor)
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
    """Render a result store as Markdown, CSV, JSON and plots."""
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
    yield CommandSpec(name="run", add_arguments=_run_arguments, run=_run)
    yield CommandSpec(name="leaderboard", add_arguments=_leaderboard_arguments, run=_leaderboard)
