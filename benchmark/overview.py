"""The overview at the top of the leaderboard and the report: detectors x protocols, each cell the mean ROC-AUC
on the test generators unseen in training (every generator where a protocol has no unseen one), clean
images, with its 95% interval; a leave-one-out group is one column (the mean over its held-out generators).

Detectors are ordered by how many columns they have a value in, then by the mean of those values: a ranking
across protocols would need them to test the same thing, so the order is a reading aid, not a verdict.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .board import ProtocolBoard
from .groups import LEAVE_ONE_OUT, GroupTable
from .selection import short_labels
from .text import Cell


@dataclass
class Overview:
    """Detector labels (ordered), column titles, a row of cells per label, and the label's readable name."""

    columns: list[str]
    labels: list[str] = field(default_factory=list)
    cells: dict[str, list[Cell]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def build_overview(
    rows: Sequence[dict[str, Any]], boards: Sequence[ProtocolBoard], groups: Sequence[GroupTable]
) -> Overview:
    """The overview of ``boards`` (leave-one-out ``groups`` folded into one column each)."""
    in_group = {name for table in groups if table.kind == LEAVE_ONE_OUT for name in table.protocols}
    columns: list[tuple[str, Any]] = [(b.name, b) for b in boards if b.name not in in_group and b.labels]
    for table in groups:
        if table.kind == LEAVE_ONE_OUT:
            columns.append((f"{table.name} (leave-one-out)", table))
    labels = list(OrderedDict.fromkeys(label for b in boards for label in b.labels))
    overview = Overview([title for title, _ in columns], names=short_labels(rows))
    for label in labels:
        row: list[Cell] = []
        for _, source in columns:
            if isinstance(source, ProtocolBoard):
                row.append(
                    source.mean_cell(label, "auc", source.rank_group)
                    if label in source.labels
                    else Cell(math.nan, text="")
                )
            else:
                row.append(source.cells[label][-1] if label in source.cells else Cell(math.nan, text=""))
        overview.cells[label] = row
    overview.labels = sorted(
        labels, key=lambda label: _order(overview.cells[label], overview.names.get(label) or label)
    )
    return overview


def _order(cells: list[Cell], name: str) -> tuple[int, float, str]:
    values = [c.value for c in cells if math.isfinite(c.value)]
    return (-len(values), -sum(values) / len(values) if values else 0.0, name)


__all__ = ["Overview", "build_overview"]
