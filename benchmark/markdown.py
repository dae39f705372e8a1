"""The leaderboard as one Markdown page for GitHub: an overview first, then per protocol the ranked ROC-AUC
table and its heatmap, with every other table folded in ``<details>``.

Bold marks the best value of a column only when its 95% interval lies above every other detector's. A detector's
``extra_metrics()`` is rendered generically: nested dicts are flattened to dotted keys, lists of equal-length
number lists are drawn as small matrices, and ``{"labels": [...], "matrix": [[...]]}`` as a matrix with named
rows and columns (e.g. a confusion matrix).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import metrics
from .board import ALL_GENERATORS, GROUP_TITLES, UNSEEN, ProtocolBoard
from .groups import LEAVE_ONE_OUT, GroupTable
from .overview import Overview
from .provenance import PROVENANCE_HEADERS, problems, provenance_notes, provenance_rows, threshold_text
from .selection import OlderConfiguration, threshold_is_meaningful
from .text import (
    DASH,
    NOT_MEANINGFUL,
    Cell,
    anchor,
    bold_separated,
    cell_text,
    condition,
    flatten_extra,
    fmt_value,
    matrix_rows,
    relative,
    rendered,
    slug,
    tabulate,
)

SUMMARY_COLUMNS = [
    ("acc", "acc@thr"),
    ("real_acc", "real acc"),
    ("fake_acc", "fake acc"),
    ("best_acc", "best-thr acc (oracle)"),
    ("eer", "EER"),
    ("tpr_at_1fpr", "TPR@1%FPR"),
    ("tpr_at_5fpr", "TPR@5%FPR"),
]
MISSING_NOTE = (
    f"{DASH} (k/n generators): the detector has a value on only k of the n test generators of that "
    "mean (an error, a skipped run, or a metric undefined on a test set, e.g. one class only), so it "
    "gets no mean: a mean over the generators that worked would flatter it. See *Skipped and failed*."
)
FIXED_NOTE = (
    f"{NOT_MEANINGFUL}: no accuracy at a threshold for this detector: its threshold is the fixed "
    "default 0.5 (policy `fixed`) and its scores are not known to be probabilities, so that threshold "
    "means nothing. The threshold-free columns still apply."
)
HOW_TO_READ = (
    "How to read: higher is better except EER. ROC-AUC and AP need no threshold. Accuracies use the "
    "detector's threshold (a score at or above it means fake) and are shown only when that threshold "
    "means something: the detector states it (`detector`), or it lets through a fixed share of the "
    "training reals (`train_real_quantile`); a fixed 0.5 on scores that need not be probabilities "
    '(`fixed`) gets no accuracy. "best-thr acc" picks the best threshold on the test set itself (an '
    "oracle bound). Intervals are 95% stratified bootstrap percentiles. A detector has a mean only when "
    "it has a value on every test generator of that mean. Where a protocol has test generators unseen "
    "in training, detectors are ranked by the mean over those (undefined means last) and the seen "
    "generators get a mean of their own. The test sets of a protocol share the same real images, so "
    "the interval of a mean resamples those shared reals once per replicate for every generator (each "
    "generator's fakes separately): the test sets are not independent, and resampling them as if they "
    "were would give intervals that are too narrow. A value is in bold only when its interval lies "
    "above the interval of every other detector in its column (no interval, no bold)."
)


def document(
    title: str,
    store_dir: str | Path,
    rows: list[dict[str, Any]],
    older: list[OlderConfiguration],
    boards: list[ProtocolBoard],
    overview: Overview,
    groups: list[GroupTable],
) -> str:
    """The whole page: counts, the overview table, how to read it, one section per protocol."""
    as_of = max((str(r.get("finished_at") or "") for r in rows), default="") or "no results"
    labels = {r.get("label") for r in rows}
    hidden = sum(o.rows for o in older)
    store = relative(store_dir)
    lines = [
        f"# {title}",
        "",
        f"{len(boards)} protocol(s), {len(labels)} detector configuration(s), {len(rows)} result rows"
        + (f" ({hidden} older row(s) of earlier protocol configurations not shown)" if hidden else "")
        + f"; latest result {as_of}. Regenerate with `dfzoo leaderboard --store {store} --out DIR`; check every "
        f"number against the stored scores with `dfzoo leaderboard --check --store {store}`; every row shown is "
        "in `results.csv` / `results.json`; the HTML report (`report.html`, written beside this page with the "
        f"figures unless plots are off; `dfzoo report --store {store} --out DIR`) adds ROC and robustness curves "
        "and an error browser.",
        "",
    ]
    if boards:
        lines += ["Protocols: " + ", ".join(f"[{b.name}](#{anchor(b.name)})" for b in boards), ""]
    if overview.labels:
        lines += [
            "## Overview",
            "",
            "Mean ROC-AUC [95% CI] of each detector on the test generators unseen in training (every "
            "generator where a protocol has no unseen one), clean images.",
            "",
            tabulate(overview_table(overview), ["Detector", *overview.columns]),
            "",
        ]
    lines += [f"<details><summary>How to read these tables</summary>\n\n{HOW_TO_READ}\n\n</details>", ""]
    for table in groups:
        lines += group_markdown(table, overview.names)
    for board in boards:
        lines += [protocol_markdown(board, overview.names), ""]
    return "\n".join(lines).rstrip() + "\n"


def overview_table(overview: Overview) -> list[list[str]]:
    """The overview's rows as Markdown cells (bold where a value stands clear of its column)."""
    table: list[list[Any]] = [[overview.names.get(label, label), *overview.cells[label]] for label in overview.labels]
    bold_separated(table)
    return rendered(table)


def group_markdown(table: GroupTable, names: Mapping[str, str]) -> list[str]:
    """A leave-one-out group or cross-dataset protocol as one ranked table (ROC-AUC, clean)."""
    rows: list[list[Any]] = [[names.get(label, label), *table.cells[label]] for label in table.labels]
    bold_separated(rows)
    return [
        f"## {table.title}",
        "",
        f"ROC-AUC (clean) per {'held-out generator' if table.kind == LEAVE_ONE_OUT else 'test dataset'}; "
        f"protocols: {', '.join(table.protocols)}.",
        "",
        tabulate(rendered(rows), ["Detector", *table.columns, "Mean [95% CI]"]),
        "",
        *footnotes(rows),
    ]


def protocol_markdown(board: ProtocolBoard, names: Mapping[str, str]) -> str:
    """One protocol's section: its settings, the ranked ROC-AUC table and heatmap, the rest folded."""
    parts = [f"## {board.name}", ""]
    description = board.first("protocol_description")
    if description:
        parts += [f"> {description}", ""]
    dataset = board.first("dataset", {})
    preprocess = board.first("preprocess", {})
    ranking = {
        UNSEEN: "Detectors are ranked by their mean over the test generators unseen in training; the "
        "seen ones have their own mean.",
        ALL_GENERATORS: "Detectors are ranked by their mean over every test generator.",
    }[board.rank_group]
    parts += [
        f"Dataset **{dataset.get('name', '?')}** (fingerprint `{dataset.get('fingerprint', '?')}`), "
        f"trained on **{', '.join(board.train_generators) or '?'}**, preprocessing "
        f"`{preprocess.get('key', '?')}`, train perturbation `{board.first('train_perturbation', 'none')}`, "
        f"seed {board.first('seed', 0)}, {board.first('bootstrap', 0)} bootstrap replicates, configuration "
        f"`{board.first('protocol_hash', '?')}`. Columns marked (train) were seen in training. {ranking}",
        "",
    ]
    if board.older:
        parts += [
            "Older results not shown (another configuration of this protocol): "
            + "; ".join(o.note() for o in board.older)
            + ".",
            "",
        ]
    families: dict[str, list[str]] = {}
    for generator in board.generators:
        families.setdefault(board.families[generator], []).append(generator)
    parts += ["Generator families: " + "; ".join(f"{f}: {', '.join(g)}" for f, g in families.items()), ""]
    if board.labels:
        parts += ranked_table(board, names, "ROC-AUC", "auc")
        parts += [f"![ROC-AUC heatmap](plots/{slug(board.name)}-auc.png)", ""]
        folded = [
            *ranked_table(board, names, "Average precision", "ap"),
            *accuracy_tables(board, names),
            *robustness_table(board, names),
            f"![ROC curves](plots/{slug(board.name)}-roc.png)",
            "",
            *interval_table(board, names),
            *extra_section(board, names),
        ]
        parts += _folded("AP, accuracy, robustness, ROC curves, intervals and method-specific results", folded)
    else:
        parts += ["No detector finished on this protocol.", ""]
    parts += _folded("Skipped and failed", problems_section(board, names))
    parts += _folded("Provenance", provenance_section(board))
    return "\n".join(parts)


def _folded(summary: str, lines: list[str]) -> list[str]:
    return ["<details><summary>" + summary + "</summary>", "", *lines, "</details>", ""] if lines else []


def _mean_headers(board: ProtocolBoard, interval: bool = True) -> list[str]:
    return [GROUP_TITLES[group] + (" [95% CI]" if interval else "") for group in board.groups]


def ranked_table(board: ProtocolBoard, names: Mapping[str, str], title: str, key: str) -> list[str]:
    """Detectors (ranked) x test generators of ``key``, then the means of each generator group with intervals."""
    table: list[list[Any]] = []
    for label in board.labels:
        cells = [board.generator_cell(label, g, key) for g in board.generators]
        cells += [board.mean_cell(label, key, group) for group in board.groups]
        table.append([names.get(label, label), *cells])
    bold_separated(table)
    return [
        f"### {title} ({condition(board.clean)})",
        "",
        tabulate(rendered(table), ["Detector", *board.header(), *_mean_headers(board)]),
        "",
        *footnotes(table),
    ]


def accuracy_tables(board: ProtocolBoard, names: Mapping[str, str]) -> list[str]:
    """Threshold metrics averaged over the ranking group, then accuracy per generator as overall (real / fake)."""
    summary = []
    for label in board.labels:
        shown = board.policy_shown(label)
        cells = [
            Cell(math.nan, text=NOT_MEANINGFUL)
            if key in metrics.THRESHOLD_METRICS and not shown
            else board.mean_cell(label, key, board.rank_group, interval=False)
            for key, _ in SUMMARY_COLUMNS
        ]
        row = next(r for r in board.ok if r["label"] == label)
        summary.append([names.get(label, label), *cells, threshold_text(row)])
    per_generator = []
    for label in board.labels:
        texts = []
        for g in board.generators:
            cell_row = board.cells.get((label, g, board.clean))
            acc = board.metric(label, g, "acc")
            if cell_row is not None and not threshold_is_meaningful(cell_row):
                texts.append(NOT_MEANINGFUL)
            else:
                texts.append(
                    DASH
                    if not math.isfinite(acc)
                    else f"{fmt_value(acc)} ({fmt_value(board.metric(label, g, 'real_acc'))} / "
                    f"{fmt_value(board.metric(label, g, 'fake_acc'))})"
                )
        per_generator.append([names.get(label, label), *texts])
    scope = {UNSEEN: "unseen test generators", ALL_GENERATORS: "test generators"}[board.rank_group]
    return [
        f"### Accuracy ({condition(board.clean)}, mean over {scope})",
        "",
        tabulate(rendered(summary), ["Detector", *(name for _, name in SUMMARY_COLUMNS), "threshold (policy)"]),
        "",
        *footnotes(summary + per_generator),
        "Accuracy at the detector's threshold per test generator, as overall (real / fake):",
        "",
        tabulate(per_generator, ["Detector", *board.header()]),
        "",
    ]


def footnotes(table: list[list[Any]]) -> list[str]:
    """The notes that explain the dashes a table holds."""
    texts = [c.render() if isinstance(c, Cell) else str(c) for row in table for c in row[1:]]
    notes = []
    if any(" generators)" in t for t in texts):
        notes.append(MISSING_NOTE)
    if any(t == NOT_MEANINGFUL for t in texts):
        notes.append(FIXED_NOTE)
    return [line for note in notes for line in (f"<sub>{note}</sub>", "")]


def robustness_table(board: ProtocolBoard, names: Mapping[str, str]) -> list[str]:
    """Mean ROC-AUC of the ranking group per test perturbation, with the change from clean."""
    if len(board.perturbations) < 2:
        return []
    table = []
    for label in board.labels:
        base = board.mean_cell(label, "auc", board.rank_group, interval=False)
        cells = [base]
        for p in board.perturbations[1:]:
            cell = board.mean_cell(label, "auc", board.rank_group, p, interval=False)
            delta = cell.value - base.value
            change = f" ({delta:+.3f})" if math.isfinite(delta) else ""
            cells.append(Cell(cell.value, text=cell.text, suffix=change))
        table.append([names.get(label, label), *cells])
    scope = {UNSEEN: "mean ROC-AUC over unseen generators", ALL_GENERATORS: "mean ROC-AUC"}[board.rank_group]
    return [
        f"### Robustness: {scope} per test perturbation (change from clean)",
        "",
        tabulate(rendered(table), ["Detector", *(condition(p) for p in board.perturbations)]),
        "",
        *footnotes(table),
    ]


def interval_table(board: ProtocolBoard, names: Mapping[str, str]) -> list[str]:
    """ROC-AUC per test generator with its 95% bootstrap interval."""
    table = []
    for label in board.labels:
        cells = []
        for g in board.generators:
            cell = board.generator_cell(label, g, "auc")
            low, high = cell.interval
            cells.append(
                DASH
                if not math.isfinite(cell.value)
                else f"{cell.text} [{fmt_value(low)}, {fmt_value(high)}]"
                if math.isfinite(low)
                else cell.text
            )
        table.append([names.get(label, label), *cells])
    return [
        "### ROC-AUC per test generator with 95% bootstrap intervals",
        "",
        tabulate(table, ["Detector", *board.header()]),
        "",
    ]


def extra_section(board: ProtocolBoard, names: Mapping[str, str]) -> list[str]:
    """Each detector's ``extra_metrics()``: scalars as a table per generator, matrices one by one."""
    lines: list[str] = []
    for label in board.labels:
        per_generator = {
            g: board.cells[(label, g, board.clean)].get("extra") or {}
            for g in board.generators
            if (label, g, board.clean) in board.cells
        }
        per_generator = {g: e for g, e in per_generator.items() if e}
        if not per_generator:
            continue
        scalars: dict[str, dict[str, Any]] = OrderedDict()
        matrices: list[tuple[str, str, Any]] = []
        for generator, extra in per_generator.items():
            flat, found = flatten_extra(extra)
            for key, value in flat.items():
                scalars.setdefault(key, {})[generator] = value
            matrices.extend((generator, key, matrix) for key, matrix in found)
        columns = list(per_generator)
        lines += [f"#### {names.get(label, label)}: method-specific results ({condition(board.clean)})", ""]
        if scalars:
            table = [[key, *(cell_text(values.get(g)) for g in columns)] for key, values in scalars.items()]
            lines += [tabulate(table, ["Result", *columns]), ""]
        for generator, key, matrix in matrices:
            headers, matrix_table = matrix_rows(matrix)
            lines += [f"**{key}** on {generator}:", "", tabulate(matrix_table, headers), ""]
    return ["### Method-specific results", "", *lines] if lines else []


def problems_section(board: ProtocolBoard, names: Mapping[str, str]) -> list[str]:
    """The table of :func:`problems` (full labels: the parameters matter when a configuration fails)."""
    found = problems(board)
    if not found:
        return []
    total = len(board.generators) * len(board.perturbations)
    table = [
        [label, status, "all test sets" if len(cells) >= total else ", ".join(cells), reason]
        for (label, status, reason), cells in found.items()
    ]
    return ["### Skipped and failed", "", tabulate(table, ["Detector", "Status", "Where", "Reason"]), ""]


def provenance_section(board: ProtocolBoard) -> list[str]:
    table = [[row[0], f"`{row[1]}`", *row[2:]] for row in provenance_rows(board)]
    return [
        "### Provenance",
        "",
        tabulate(table, PROVENANCE_HEADERS),
        "",
        *(f"- {note}" for note in provenance_notes(board)),
        "",
    ]


__all__ = [
    "FIXED_NOTE",
    "MISSING_NOTE",
    "document",
    "group_markdown",
    "overview_table",
    "protocol_markdown",
]
