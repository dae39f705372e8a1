"""Exports for analysis and papers: every shown row's per-image scores as one Parquet file (for pandas, DuckDB,
polars), and the leaderboard's tables as LaTeX (booktabs).

Parquet columns, one line per image of each row: ``row_id``, ``protocol``, ``detector`` (the configuration's
label), ``detector_name``, ``generator`` (the row's test generator: its test set holds that generator's fakes
and the shared reals), ``perturbation``, ``path`` (the image id the sidecar records), ``label`` (0 real,
1 fake) and ``score`` (raw, higher = more likely fake; NaN for an image that could not be scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .results import Results
from .store import OK, ResultStore
from .text import Cell, bold_separated, fmt_value, slug

SCORE_COLUMNS = (
    "row_id",
    "protocol",
    "detector",
    "detector_name",
    "generator",
    "perturbation",
    "path",
    "label",
    "score",
)
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def write_scores_parquet(rows: Sequence[dict[str, Any]], store: ResultStore, path: Path) -> Path:
    """Write the per-image scores of every ``ok`` row that has a sidecar (see the module docstring)."""
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    columns: dict[str, list[Any]] = {name: [] for name in SCORE_COLUMNS}
    for row in rows:
        if row.get("status") != OK:
            continue
        sidecar = store.load_sidecar(str(row.get("row_id")))
        if sidecar is None:
            continue
        n = sidecar.labels.size
        ids = sidecar.ids.tolist() if sidecar.ids is not None else [""] * n
        fixed = {
            "row_id": row.get("row_id"),
            "protocol": row.get("protocol"),
            "detector": row.get("label"),
            "detector_name": row.get("detector"),
            "generator": row.get("test_generator"),
            "perturbation": row.get("test_perturbation", "none"),
        }
        for name, value in fixed.items():
            columns[name].extend([str(value)] * n)
        columns["path"].extend(str(i) for i in ids)
        columns["label"].extend(int(v) for v in sidecar.labels)
        columns["score"].extend(float(v) for v in sidecar.scores)
    schema = pa.schema(
        [(name, pa.string()) for name in SCORE_COLUMNS[:7]] + [("label", pa.int8()), ("score", pa.float64())]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


def latex_escape(text: Any) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(LATEX_SPECIALS.get(c, c) for c in str(text))


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str, label: str) -> str:
    """A booktabs table; a :class:`Cell` prints its value with its interval in brackets, bold when it stands
    clear of its column (``\\usepackage{booktabs}`` needed)."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        lines.append(" & ".join(_latex_cell(v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _latex_cell(value: Any) -> str:
    if not isinstance(value, Cell):
        return latex_escape(fmt_value(value) if isinstance(value, float) else value)
    text = latex_escape(value.text or fmt_value(value.value))
    text = rf"\textbf{{{text}}}" if value.bold else text
    low, high = value.interval
    if value.value == value.value and low == low and high == high:  # all finite (NaN != NaN)
        text += rf" {{\scriptsize [{fmt_value(low, 2)}, {fmt_value(high, 2)}]}}"
    return text


def write_latex_tables(results: Results, folder: Path) -> list[Path]:
    """``overview.tex``, ``<protocol>-auc.tex`` per protocol and ``<group>.tex`` per leave-one-out or
    cross-dataset table, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = results.names
    written = []
    overview = results.overview
    if overview.labels:
        rows = [[names.get(label, label), *overview.cells[label]] for label in overview.labels]
        bold_separated(rows)
        text = latex_table(
            ["Detector", *overview.columns],
            rows,
            "Mean ROC-AUC [95% CI] on test generators unseen in training (clean).",
            "tab:dfzoo-overview",
        )
        written.append(_write(folder / "overview.tex", text))
    for board in results.boards:
        if not board.labels:
            continue
        rows = []
        for label in board.labels:
            cells: list[Cell] = [board.generator_cell(label, g, "auc") for g in board.generators]
            cells += [board.mean_cell(label, "auc", group) for group in board.groups]
            rows.append([names.get(label, label), *cells])
        bold_separated(rows)
        headers = ["Detector", *board.header(), *(f"{group} mean" for group in board.groups)]
        caption = f"{board.name}: ROC-AUC [95% CI] per test generator (clean)."
        written.append(
            _write(
                folder / f"{slug(board.name)}-auc.tex", latex_table(headers, rows, caption, f"tab:{slug(board.name)}")
            )
        )
    for table in results.groups:
        rows = [[names.get(label, label), *table.cells[label]] for label in table.labels]
        bold_separated(rows)
        text = latex_table(
            ["Detector", *table.columns, "Mean"], rows, f"{table.title}: ROC-AUC [95% CI].", f"tab:{slug(table.name)}"
        )
        written.append(_write(folder / f"{slug(table.name)}-{table.kind}.tex", text))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


__all__ = ["SCORE_COLUMNS", "latex_escape", "latex_table", "write_latex_tables", "write_scores_parquet"]
