"""Protocols shown as one table each: leave-one-out groups and cross-dataset protocols.

- A leave-one-out group is the protocols whose rows share a ``protocol_group``; each of them holds out the
  generator(s) its rows name in ``held_out`` (or, for rows without that field, its test generators unseen in
  training). The table has one column per held-out generator (the AUC of the protocol that held it out) and
  the mean over them with its 95% interval.
- A cross-dataset protocol is one whose rows name a ``test_dataset``: one column per test dataset (the mean
  over its test generators) and the mean over every test set.

A mean is defined only when every column has a value; its interval resamples the images that several test
sets share jointly (:func:`board.rows_mean_ci`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .board import UNSEEN, ProtocolBoard, rows_mean_ci
from .selection import shown_metrics
from .text import Cell, finite, fmt_value, interval_text, missing, rank_key

GROUP_FIELD, HELD_OUT_FIELD, TEST_DATASET_FIELD = "protocol_group", "held_out", "test_dataset"
LEAVE_ONE_OUT, CROSS_DATASET = "leave-one-out", "cross-dataset"


@dataclass
class GroupTable:
    """Detectors x columns of ROC-AUC cells (with intervals), the last column the mean; ranked by the mean."""

    name: str  # the group's or the protocol's name
    kind: str  # LEAVE_ONE_OUT or CROSS_DATASET
    protocols: list[str]
    columns: list[str]
    labels: list[str] = field(default_factory=list)
    cells: dict[str, list[Cell]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.name}: {'leave one generator out' if self.kind == LEAVE_ONE_OUT else 'cross-dataset'}"


def group_name(board: ProtocolBoard) -> str | None:
    """The leave-one-out group a protocol belongs to, if its rows name one."""
    value = board.first(GROUP_FIELD)
    return str(value) if value else None


def held_out(board: ProtocolBoard) -> list[str]:
    """The generators a protocol holds out: its rows' ``held_out``, else its unseen (or all) test generators."""
    value = board.first(HELD_OUT_FIELD)
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and value:
        return [str(v) for v in value]
    return list(board.groups.get(UNSEEN, board.generators))


def dataset_name(row: Mapping[str, Any]) -> str | None:
    """A row's test dataset (a name, or the ``name`` of a dict), if it records one."""
    value = row.get(TEST_DATASET_FIELD)
    if isinstance(value, Mapping):
        value = value.get("name")
    return str(value) if value else None


def leave_one_out_tables(boards: Sequence[ProtocolBoard]) -> list[GroupTable]:
    """One table per ``protocol_group`` found among the boards."""
    grouped: OrderedDict[str, list[ProtocolBoard]] = OrderedDict()
    for board in boards:
        name = group_name(board)
        if name:
            grouped.setdefault(name, []).append(board)
    tables = []
    for name, members in grouped.items():
        columns: list[tuple[str, ProtocolBoard]] = [(g, b) for b in members for g in held_out(b)]
        labels = list(OrderedDict.fromkeys(label for b in members for label in b.labels))
        rows_of = {label: [b.cells.get((label, g, b.clean)) for g, b in columns] for label in labels}
        tables.append(
            _table(
                name,
                LEAVE_ONE_OUT,
                [b.name for b in members],
                [g for g, _ in columns],
                rows_of,
                members[0],
            )
        )
    return tables


def cross_dataset_tables(boards: Sequence[ProtocolBoard]) -> list[GroupTable]:
    """One table per protocol whose rows test on another dataset than they trained on (or on several): a
    protocol that trains and tests on one dataset (every LOGO fold) names its ``test_dataset`` too, but
    is no cross-dataset protocol."""
    tables = []
    for board in boards:
        datasets = list(OrderedDict.fromkeys(d for d in map(dataset_name, board.ok) if d))
        trained_on = {(row.get("dataset") or {}).get("name") for row in board.ok}
        if not datasets or (len(datasets) == 1 and trained_on == set(datasets)):
            continue
        table = GroupTable(board.name, CROSS_DATASET, [board.name], datasets)
        for label in board.labels:
            cells = []
            for dataset in datasets:
                rows = [r for r in board.ok if r["label"] == label and dataset_name(r) == dataset]
                rows = [r for r in rows if r.get("test_perturbation", board.clean) == board.clean]
                cells.append(_mean(rows, board))
            everything = [board.cells.get((label, g, board.clean)) for g in board.generators]
            table.cells[label] = [*cells, _mean(everything, board)]
        table.labels = sorted(table.cells, key=lambda label: rank_key(table.cells[label][-1].value, label))
        tables.append(table)
    return tables


def _table(
    name: str,
    kind: str,
    protocols: list[str],
    columns: list[str],
    rows_of: Mapping[str, list[dict[str, Any] | None]],
    board: ProtocolBoard,
) -> GroupTable:
    table = GroupTable(name, kind, protocols, columns)
    for label, rows in rows_of.items():
        cells = [_single(row) for row in rows]
        table.cells[label] = [*cells, _mean(rows, board)]
    table.labels = sorted(table.cells, key=lambda label: rank_key(table.cells[label][-1].value, label))
    return table


def _single(row: Mapping[str, Any] | None) -> Cell:
    if row is None:
        return Cell(math.nan, text="–")
    values = row.get("metrics") or {}
    value = finite(values.get("auc"))
    low, high = (finite(v) for v in (values.get("auc_ci") or (None, None)))
    return Cell(value, (low, high), fmt_value(value))


def _mean(rows: Sequence[Mapping[str, Any] | None], board: ProtocolBoard) -> Cell:
    """The mean ROC-AUC over ``rows`` (undefined when one is missing) with its joint bootstrap interval."""
    if len(rows) == 1 and rows[0] is not None:
        return _single(rows[0])
    mean = metrics.average_metrics([shown_metrics(r) if r else None for r in rows])
    value = finite(mean.get("auc"))
    if not math.isfinite(value):
        return Cell(value, text=missing(mean, "auc"))
    low, high = rows_mean_ci(rows, board.store)["auc_ci"]
    return Cell(value, (low, high), fmt_value(value), interval_text(low, high))


__all__ = [
    "CROSS_DATASET",
    "LEAVE_ONE_OUT",
    "GroupTable",
    "cross_dataset_tables",
    "dataset_name",
    "group_name",
    "held_out",
    "leave_one_out_tables",
]
