"""dfzoo's benchmark: protocols (data), a resumable harness, metrics, an append-only result store, a leaderboard.

Python API::

    from dfzoo.benchmark import default_protocols, load_protocol, run_benchmark, render_leaderboard
    summary = run_benchmark(default_protocols(), "runs/default")
    render_leaderboard("runs/default", "leaderboard")

The same from the command line: ``dfzoo run`` then ``dfzoo leaderboard``.
"""

from __future__ import annotations

from .executor import Executor, Job, JobEvent, LocalExecutor
from .harness import RunSummary, run_benchmark
from .leaderboard import render_leaderboard, summary_table
from .protocol import (
    DetectorEntry,
    Protocol,
    ProtocolError,
    default_protocols,
    load_protocol,
    parse_protocol,
    protocol_from_flags,
)
from .runner import run_job
from .store import ResultStore

__all__ = [
    "DetectorEntry",
    "Executor",
    "Job",
    "JobEvent",
    "LocalExecutor",
    "Protocol",
    "ProtocolError",
    "ResultStore",
    "RunSummary",
    "default_protocols",
    "load_protocol",
    "parse_protocol",
    "protocol_from_flags",
    "render_leaderboard",
    "run_benchmark",
    "run_job",
    "summary_table",
]
