"""Render a result store as a leaderboard: a Markdown page for GitHub (overview first, details folded), CSV,
JSON, figures, and (by default) the HTML report with its exports.

This module is the entry point; each idea lives in its own module:

- :mod:`.selection`: which rows are shown (the newest configuration of each protocol) and readable labels;
- :mod:`.board`: one protocol's rows as detectors x generators x perturbations, means and their intervals;
- :mod:`.groups` / :mod:`.overview`: leave-one-out and cross-dataset tables, the overview across protocols;
- :mod:`.markdown` / :mod:`.report`: the Markdown page and the HTML report; :mod:`.figures`: the plots;
- :mod:`.text`: how numbers and cells are written.

Every number comes from the rows (computed by :mod:`dfzoo.benchmark.metrics`) or, for intervals of means and
ROC curves, from ``metrics`` applied to the raw-score sidecars.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .board import ProtocolBoard, image_ids
from .figures import HEATMAP, ROC, board_figures
from .groups import LEAVE_ONE_OUT, group_name
from .markdown import FIXED_NOTE, MISSING_NOTE, document
from .results import Results, load_results
from .selection import OlderConfiguration, current_configurations, family_label
from .store import clean_json
from .text import DASH, NOT_MEANINGFUL, flatten_extra, missing, one_line, tabulate

CSV_METRICS = (
    "auc",
    "ap",
    "acc",
    "real_acc",
    "fake_acc",
    "best_acc",
    "eer",
    "tpr_at_1fpr",
    "tpr_at_5fpr",
    "n_real",
    "n_fake",
    "n_nan",
)


def render_leaderboard(
    store_dir: str | Path,
    out_dir: str | Path,
    *,
    title: str = "dfzoo leaderboard",
    plots: bool = True,
    report: bool | None = None,
) -> list[Path]:
    """Write ``README.md``, ``results.csv``, ``results.json`` and ``plots/*`` into ``out_dir``, and with
    ``report`` (default: when ``plots``) the HTML report ``report.html`` with its exports beside them.

    Returns the paths written, the Markdown page first. The output depends only on the store's content (no
    wall-clock date), so regenerating an unchanged leaderboard gives the same files.
    """
    results = load_results(store_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with_report = plots if report is None else report
    written: list[Path] = []
    if plots and not with_report:
        for board in results.boards:
            for paths in board_figures(board, out / "plots", results.names).values():
                written.extend(paths)
    markdown = out / "README.md"
    markdown.write_text(
        document(title, store_dir, results.rows, results.older, results.boards, results.overview, results.groups)
    )
    written.insert(0, markdown)
    written.append(write_csv(out / "results.csv", results.rows))
    written.append(write_json(out / "results.json", results))
    if with_report:
        from .report import render_report

        written.extend(render_report(results, out, title=title))
    return written


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = [
        "protocol",
        "protocol_hash",
        "label",
        "detector",
        "test_generator",
        "test_family",
        "seen_in_training",
        "test_perturbation",
        "status",
        *CSV_METRICS,
        "auc_ci_low",
        "auc_ci_high",
        "ap_ci_low",
        "ap_ci_high",
        "threshold",
        "threshold_policy",
        "threshold_fpr",
        "params_hash",
        "dataset",
        "dataset_fingerprint",
        "preprocess",
        "train_perturbation",
        "train_generators",
        "seed",
        "commit",
        "fit_seconds",
        "score_seconds",
        "finished_at",
        "reason",
        "row_id",
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            values = row.get("metrics") or {}
            error = row.get("error") or {}
            record = {key: row.get(key) for key in columns if key in row}
            record.update({key: values.get(key) for key in CSV_METRICS})
            for key in ("auc", "ap"):
                ci = values.get(f"{key}_ci") or [None, None]
                record[f"{key}_ci_low"], record[f"{key}_ci_high"] = ci
            record.update(
                {
                    "test_family": family_label(row.get("test_family")),
                    "dataset": (row.get("dataset") or {}).get("name"),
                    "dataset_fingerprint": (row.get("dataset") or {}).get("fingerprint"),
                    "preprocess": (row.get("preprocess") or {}).get("key"),
                    "train_generators": ";".join(row.get("train_generators") or []),
                    "reason": row.get("reason")
                    or (f"{error.get('type')}: {one_line(error.get('message', ''))}" if error else ""),
                }
            )
            writer.writerow(record)
    return path


def write_json(path: Path, results: Results) -> Path:
    """Every shown row, the per-protocol summaries and the older configurations left out, as JSON."""
    data = {
        "protocols": {b.name: b.summary() for b in results.boards},
        "rows": results.rows,
        "older_configurations": [vars(o) for o in results.older],
    }
    path.write_text(json.dumps(clean_json(data), indent=1, sort_keys=True) + "\n")
    return path


def summary_table(store_dir: str | Path, protocols: Sequence[str] | None = None) -> str:
    """A short plain-text table (for the end of ``dfzoo run``): the ranking mean of clean AUC/AP/acc per detector.
    The folds of a leave-one-out group are one line per detector: its mean AUC over the held-out generators
    (the Markdown and HTML show each fold)."""
    results = load_results(store_dir)
    # a leave-one-out protocol's folds are protocols of their own (``<name>/loo-<generator>``): its name selects them
    wanted = None if protocols is None else set(protocols)
    boards = [b for b in results.boards if wanted is None or {b.name, group_name(b)} & wanted]
    selected = {board.name for board in boards}
    groups = [g for g in results.groups if g.kind == LEAVE_ONE_OUT and selected.issuperset(g.protocols)]
    in_groups = {name for group in groups for name in group.protocols}
    table = []
    for board in boards:
        if board.name in in_groups:
            continue
        for entry in board.summary(intervals=False):
            mean = entry.get("mean", {}).get(board.clean, {}).get(board.rank_group)
            if mean is None:  # no result row: its errors are counted in the last column
                values = [DASH] * 3
            else:
                values = [
                    missing(mean, "auc"),
                    missing(mean, "ap"),
                    missing(mean, "acc") if board.policy_shown(entry["label"]) else NOT_MEANINGFUL,
                ]
            label = results.names.get(entry["label"], entry["label"])
            table.append([board.name, label, board.rank_group, *values, _status_text(entry["status"])])
    for group in groups:
        statuses = _group_statuses([b for b in boards if b.name in group.protocols])
        for label in group.labels:
            mean = group.cells[label][-1]
            shown = results.names.get(label, label)
            held_out = f"held out ({len(group.columns)} folds)"
            table.append([group.name, shown, held_out, mean.text, DASH, DASH, _status_text(statuses.get(label, {}))])
    return tabulate(
        table, ["protocol", "detector", "generators", "mean AUC", "mean AP", "mean acc", "rows"], fmt="simple"
    )


def _status_text(status: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in status.items() if n)


def _group_statuses(boards: Sequence[ProtocolBoard]) -> dict[str, dict[str, int]]:
    """Row statuses per detector label, summed over the folds of a group."""
    totals: dict[str, dict[str, int]] = {}
    for board in boards:
        for entry in board.summary(intervals=False):
            into = totals.setdefault(entry["label"], {})
            for status, count in entry["status"].items():
                into[status] = into.get(status, 0) + count
    return totals


__all__ = [
    "DASH",
    "FIXED_NOTE",
    "HEATMAP",
    "MISSING_NOTE",
    "NOT_MEANINGFUL",
    "ROC",
    "OlderConfiguration",
    "ProtocolBoard",
    "current_configurations",
    "family_label",
    "flatten_extra",
    "image_ids",
    "render_leaderboard",
    "summary_table",
    "write_csv",
    "write_json",
]
