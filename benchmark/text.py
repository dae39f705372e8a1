"""How numbers and labels are written in the leaderboard, the HTML report and the terminal tables.

One home for the small rules every renderer shares: how a value prints (three decimals, a dash for none), a
table cell with its interval and when it is bold, how a detector's extra metrics flatten into rows, and the
slugs and anchors of names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.plain import slug  # re-exported: the report's file names and anchors

DASH = "–"
NOT_MEANINGFUL = f"{DASH}†"
CLEAN = "none"


@dataclass
class Cell:
    """One number of a table with its interval; rendered as ``text`` (+ bold when it stands out) + ``suffix``."""

    value: float
    interval: tuple[float, float] = (math.nan, math.nan)
    text: str = ""
    suffix: str = ""
    bold: bool = False

    def render(self) -> str:
        return (f"**{self.text}**" if self.bold else self.text) + self.suffix


def bold_separated(table: list[list[Any]]) -> None:
    """Bold the best (highest) :class:`Cell` of each column when its interval lies above every other finite
    cell's interval; a tie for best, or a missing interval on either side, gives no bold."""
    for column in range(1, len(table[0]) if table else 0):
        cells = [row[column] for row in table if isinstance(row[column], Cell) and math.isfinite(row[column].value)]
        if len(cells) < 2:
            continue
        cells.sort(key=lambda cell: -cell.value)
        best, others = cells[0], cells[1:]
        bounds = [best.interval[0], *(cell.interval[1] for cell in others)]
        if (
            others[0].value < best.value
            and all(math.isfinite(b) for b in bounds)
            and all(cell.interval[1] < best.interval[0] for cell in others)
        ):
            best.bold = True


def rendered(table: list[list[Any]]) -> list[list[Any]]:
    """The table with every :class:`Cell` turned into its Markdown text."""
    return [[cell.render() if isinstance(cell, Cell) else cell for cell in row] for row in table]


def tabulate(table: list[list[Any]], headers: list[str], fmt: str = "github") -> str:
    """A text table (GitHub Markdown by default); floats print with :func:`fmt`, a ``|`` in a cell is escaped."""
    from tabulate import tabulate as _tabulate

    cells = [[fmt_value(v) if isinstance(v, float) else v for v in row] for row in table]
    if fmt == "github":  # a "|" inside a cell would end it
        cells = [[str(v).replace("|", "\\|") for v in row] for row in cells]
        headers = [h.replace("|", "\\|") for h in headers]
    return _tabulate(cells, headers=headers, tablefmt=fmt, disable_numparse=True)


def missing(mean: Mapping[str, Any], key: str) -> str:
    """A mean's value, or a dash with how many of its test generators had a value when it is undefined."""
    value = finite(mean.get(key))
    if math.isfinite(value):
        return fmt_value(value)
    defined, total = (mean.get("defined") or {}).get(key, 0), mean.get("n_sets", 0)
    return f"{DASH} ({defined}/{total} generators)" if total and defined < total else DASH


def rank_key(value: Any, label: str) -> tuple[bool, float, str]:
    """Sort key: finite values first, highest first; undefined (NaN) last; then by label."""
    value = finite(value)
    return (not math.isfinite(value), -value if math.isfinite(value) else 0.0, label)


def fmt_value(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, a dash for None/NaN, anything else as ``str``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def cell_text(value: Any) -> str:
    """Like :func:`fmt_value`, but integers stay integers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return fmt_value(value)


def finite(value: Any) -> float:
    """``value`` as a float when it is a finite number, else NaN."""
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else math.nan
    )


def interval_text(low: float, high: float) -> str:
    """``" [low, high]"`` when both ends are finite, else ``""``."""
    return f" [{fmt_value(low)}, {fmt_value(high)}]" if math.isfinite(low) and math.isfinite(high) else ""


def condition(perturbation: str) -> str:
    """A test perturbation as a column title: ``clean`` for none."""
    return "clean" if perturbation == CLEAN else perturbation


def flatten_extra(extra: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """``(scalars by dotted key, [(key, matrix)])`` from a detector's extra metrics."""
    scalars: dict[str, Any] = {}
    matrices: list[tuple[str, Any]] = []
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "matrix" in value and is_matrix(value["matrix"]):
            matrices.append((name, value))
        elif isinstance(value, Mapping):
            inner_scalars, inner_matrices = flatten_extra(value, f"{name}.")
            scalars.update(inner_scalars)
            matrices.extend(inner_matrices)
        elif is_matrix(value):
            matrices.append((name, value))
        elif isinstance(value, list):
            scalars[name] = ", ".join(cell_text(v) for v in value)
        else:
            scalars[name] = value
    return scalars, matrices


def is_matrix(value: Any) -> bool:
    """A non-empty list of equal-length, non-empty lists of numbers (None allowed)."""
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(r, list) and r for r in value)
        and len({len(r) for r in value}) == 1
        and all(isinstance(v, (int, float)) or v is None for r in value for v in r)
    )


def matrix_rows(value: Any) -> tuple[list[str], list[list[Any]]]:
    """``(column titles, rows)`` of a matrix, or of ``{"labels": [...], "matrix": [[...]]}`` (named rows and
    columns); a row starts with its title."""
    if isinstance(value, Mapping):
        matrix = value["matrix"]
        labels = [str(x) for x in value.get("labels") or []]
    else:
        matrix, labels = value, []
    row_titles = labels if len(labels) == len(matrix) else [str(i) for i in range(len(matrix))]
    column_titles = labels if len(labels) == len(matrix[0]) else [str(j) for j in range(len(matrix[0]))]
    return ["", *column_titles], [[row_titles[i], *(cell_text(v) for v in row)] for i, row in enumerate(matrix)]


def describe_text(describe: Mapping[str, Any]) -> str:
    """A detector's ``describe()`` on one line: ``key=value; ...`` (nested keys dotted)."""
    flat, _ = flatten_extra(describe)
    return "; ".join(f"{k}={cell_text(v)}" for k, v in flat.items())


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line, at most ``limit`` characters, with no ``|`` (it would end a Markdown cell)."""
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def anchor(name: str) -> str:
    """The anchor GitHub gives a heading ``name``."""
    return "".join(c for c in name.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def relative(path: str | Path) -> str:
    """``path`` relative to the working directory where it lies below it (for commands shown to a reader)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


__all__ = [
    "CLEAN",
    "DASH",
    "NOT_MEANINGFUL",
    "Cell",
    "anchor",
    "bold_separated",
    "cell_text",
    "condition",
    "describe_text",
    "finite",
    "flatten_extra",
    "fmt_value",
    "interval_text",
    "is_matrix",
    "matrix_rows",
    "missing",
    "one_line",
    "rank_key",
    "relative",
    "rendered",
    "slug",
    "tabulate",
]
