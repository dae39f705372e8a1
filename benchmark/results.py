"""A result store read once for rendering: the rows shown, older configurations left out, one board per
protocol, the leave-one-out and cross-dataset tables, and the overview. The Markdown leaderboard, the HTML
report and the exports all render from one :class:`Results`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .board import ProtocolBoard, boards
from .groups import GroupTable, cross_dataset_tables, leave_one_out_tables
from .overview import Overview, build_overview
from .selection import OlderConfiguration, current_configurations
from .store import ResultStore


@dataclass
class Results:
    """What a leaderboard or report shows of a store (see the module docstring)."""

    store_dir: Path
    store: ResultStore
    rows: list[dict[str, Any]]
    older: list[OlderConfiguration]
    boards: list[ProtocolBoard]
    groups: list[GroupTable]
    overview: Overview

    @property
    def names(self) -> dict[str, str]:
        """Readable name of each detector label."""
        return self.overview.names


def load_results(store_dir: str | Path) -> Results:
    """Read a store and arrange its current rows (an empty or missing store gives empty results)."""
    store = ResultStore(store_dir)
    rows, older = current_configurations(store.rows())
    arranged = boards(rows, older, store)
    groups = leave_one_out_tables(arranged) + cross_dataset_tables(arranged)
    return Results(Path(store_dir), store, rows, older, arranged, groups, build_overview(rows, arranged, groups))


__all__ = ["Results", "load_results"]
