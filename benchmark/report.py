"""The HTML report of a result store: one static page (``report.html``) that works offline from ``file://``.

It holds, in order: an overview (detectors x protocols, mean ROC-AUC on unseen generators with 95% intervals,
sortable by clicking a header); leave-one-out groups and cross-dataset protocols as one table each; then per
protocol the ROC-AUC table and heatmap with intervals, AP / TPR@1%FPR / accuracy at the recorded threshold,
ROC curves on linear and logarithmic false-positive axes, per-family means, the seen/unseen split, robustness
curves over perturbation sweeps, an error browser (the most confident mistakes with thumbnails), failures, and
provenance per row, folded away. Figures are inlined as SVG and written beside the page as PNG, SVG and PDF;
the per-image scores go to ``scores.parquet`` and the tables to ``tables/*.tex``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import metrics
from .board import GROUP_TITLES, SEEN, UNSEEN, ProtocolBoard
from .errors import Thumbnails, image_file, mistakes
from .export import write_latex_tables, write_scores_parquet
from .figures import HEATMAP, ROBUSTNESS, ROC, ROC_LOG, board_figures
from .groups import LEAVE_ONE_OUT
from .markdown import SUMMARY_COLUMNS
from .page import details_html, esc, figure_html, page_html, table_html
from .provenance import PROVENANCE_HEADERS, problems, provenance_notes, provenance_rows, threshold_text
from .results import Results
from .sweeps import find_sweeps
from .text import NOT_MEANINGFUL, Cell, bold_separated, condition, fmt_value, slug

REPORT_FILE = "report.html"
FIGURE_FORMATS = ("png", "svg", "pdf")
ERRORS_PER_KIND = 4
ERROR_BROWSER_DETECTORS = 12  # the best-ranked detectors of a protocol get an error browser (a grid has hundreds)


def render_report(results: Results, out_dir: Path, *, title: str = "dfzoo report") -> list[Path]:
    """Write ``report.html``, its figures (``plots/``), ``scores.parquet`` and ``tables/*.tex`` into
    ``out_dir``; returns the files written, the page first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    folds = {name for table in results.groups if table.kind == LEAVE_ONE_OUT for name in table.protocols}
    figures: dict[str, dict[str, list[Path]]] = {}
    for board in results.boards:  # a leave-one-out fold is summed up by its group's table: no figures of its own
        if board.name in folds:
            figures[board.name] = {}
            continue
        figures[board.name] = board_figures(board, out_dir / "plots", results.names, FIGURE_FORMATS, extended=True)
        written.extend(path for paths in figures[board.name].values() for path in paths)
    exports = [write_scores_parquet(results.rows, results.store, out_dir / "scores.parquet")]
    exports += write_latex_tables(results, out_dir / "tables")
    written.extend(exports)
    thumbnails = Thumbnails()
    sections = [overview_section(results), *group_sections(results)]
    for board in results.boards:
        section = protocol_section(board, results.names, figures[board.name], out_dir, thumbnails)
        sections.append(details_html(f"Fold {board.name} in detail", section) if board.name in folds else section)
    sections.append(exports_section(exports, out_dir))
    page = out_dir / REPORT_FILE
    page.write_text(page_html(title, header_html(results), sections, style=thumbnails.style()))
    return [page, *written]


def header_html(results: Results) -> str:
    """Counts, the newest result's date and links to each section."""
    as_of = max((str(r.get("finished_at") or "") for r in results.rows), default="") or "no results"
    hidden = sum(o.rows for o in results.older)
    links = ['<a href="#overview">Overview</a>']
    links += [f'<a href="#{esc(_anchor("group", t.name))}">{esc(t.title)}</a>' for t in results.groups]
    folds = {name for table in results.groups if table.kind == LEAVE_ONE_OUT for name in table.protocols}
    links += [
        f'<a href="#{esc(_anchor("protocol", b.name))}">{esc(b.name)}</a>'
        for b in results.boards
        if b.name not in folds
    ]
    return (
        f'<p class="muted">{len(results.boards)} protocol(s), {len({r.get("label") for r in results.rows})} detector '
        f"configuration(s), {len(results.rows)} result rows"
        + (f" ({hidden} older row(s) of earlier configurations not shown)" if hidden else "")
        + f"; latest result {esc(as_of)}; store <code>{esc(results.store_dir)}</code>.</p>"
        f"<nav>{''.join(links)}</nav>"
    )


def overview_section(results: Results) -> str:
    overview = results.overview
    if not overview.labels:
        return '<section id="overview"><h2>Overview</h2><p>No result rows.</p></section>'
    rows: list[list[object]] = [[overview.names.get(label, label), *overview.cells[label]] for label in overview.labels]
    bold_separated(rows)
    return (
        '<section id="overview"><h2>Overview</h2>'
        '<p class="note">Mean ROC-AUC [95% CI] on the test generators unseen in training (every generator where '
        "a protocol has none unseen), clean images; a leave-one-out group is the mean over its held-out "
        "generators. A dash: the detector lacks a value on some generator of that mean. Bold: the interval "
        "lies above every other detector's. Click a header to sort.</p>"
        + table_html(["Detector", *overview.columns], rows, table_id="overview-table")
        + "</section>"
    )


def group_sections(results: Results) -> list[str]:
    out = []
    for table in results.groups:
        rows: list[list[object]] = [[results.names.get(lb, lb), *table.cells[lb]] for lb in table.labels]
        bold_separated(rows)
        what = "held-out generator" if table.kind == LEAVE_ONE_OUT else "test dataset"
        out.append(
            f'<section id="{esc(_anchor("group", table.name))}"><h2>{esc(table.title)}</h2>'
            f'<p class="note">ROC-AUC (clean) per {what}; the mean over them with its 95% interval. '
            f"Protocols: {esc(', '.join(table.protocols))}.</p>"
            + table_html(["Detector", *table.columns, "Mean [95% CI]"], rows)
            + "</section>"
        )
    return out


def protocol_section(
    board: ProtocolBoard,
    names: Mapping[str, str],
    figures: Mapping[str, Sequence[Path]],
    page_dir: Path,
    thumbnails: Thumbnails,
) -> str:
    """Everything about one protocol (see the module docstring)."""
    anchor = _anchor("protocol", board.name)
    dataset = board.first("dataset", {})
    description = str(board.first("protocol_description") or "").strip()
    description += "." if description and description[-1] not in ".!?" else ""
    parts = [
        f'<section id="{esc(anchor)}"><h2>{esc(board.name)}</h2>',
        f'<p class="note">{esc(description)} Dataset <b>{esc(dataset.get("name", "?"))}'
        f"</b> (fingerprint <code>{esc(dataset.get('fingerprint', '?'))}</code>), trained on "
        f"<b>{esc(', '.join(board.train_generators) or '?')}</b>, preprocessing "
        f"<code>{esc((board.first('preprocess') or {}).get('key', '?'))}</code>, seed {esc(board.first('seed', 0))}, "
        f"{esc(board.first('bootstrap', 0))} bootstrap replicates, configuration "
        f"<code>{esc(board.first('protocol_hash', '?'))}</code>.</p>",
    ]
    if board.older:
        parts.append(f'<p class="note">Older results not shown: {esc("; ".join(o.note() for o in board.older))}.</p>')
    if not board.labels:
        parts.append("<p>No detector finished on this protocol.</p>")
    else:
        parts += [
            "<h3>ROC-AUC per test generator [95% CI]</h3>",
            _auc_table(board, names),
            _figure(figures, HEATMAP, "ROC-AUC heatmap with 95% intervals", page_dir, anchor),
            f"<h3>Operating points ({esc(GROUP_TITLES[board.rank_group].lower())})</h3>",
            _metrics_table(board, names),
            _figure(figures, ROC, "ROC curves", page_dir, anchor),
            _figure(figures, ROC_LOG, "ROC curves, log false-positive rate (TPR@1%FPR at the line)", page_dir, anchor),
            "<h3>Per family</h3>",
            _family_table(board, names),
            _seen_unseen(board, names),
            _robustness(board, names, figures, page_dir, anchor),
        ]
    parts += [
        details_html("Error browser: the most confident mistakes", _error_browser(board, names, thumbnails)),
        details_html("Skipped and failed", _problems(board)),
        details_html("Provenance (weights identity, versions, commit per row)", _provenance(board)),
        "</section>",
    ]
    return "\n".join(p for p in parts if p)


def _auc_table(board: ProtocolBoard, names: Mapping[str, str]) -> str:
    rows: list[list[object]] = []
    for label in board.labels:
        cells = [board.generator_cell(label, g, "auc") for g in board.generators]
        rows.append([names.get(label, label), *cells, *(board.mean_cell(label, "auc", gr) for gr in board.groups)])
    bold_separated(rows)
    headers = ["Detector", *board.header(), *(f"{GROUP_TITLES[g]} [95% CI]" for g in board.groups)]
    return table_html(headers, rows)


def _metrics_table(board: ProtocolBoard, names: Mapping[str, str]) -> str:
    rows: list[list[object]] = []
    for label in board.labels:
        shown = board.policy_shown(label)
        cells: list[object] = [board.mean_cell(label, key, board.rank_group) for key in ("auc", "ap")]
        for key, _ in SUMMARY_COLUMNS:
            if key in metrics.THRESHOLD_METRICS and not shown:
                cells.append(Cell(math.nan, text=NOT_MEANINGFUL))
            else:
                cells.append(board.mean_cell(label, key, board.rank_group, interval=False))
        row = next(r for r in board.ok if r["label"] == label)
        rows.append([names.get(label, label), *cells, threshold_text(row)])
    headers = ["Detector", "ROC-AUC", "AP", *(title for _, title in SUMMARY_COLUMNS), "threshold (policy)"]
    note = (
        f'<p class="note">Means over the {"unseen " if board.rank_group == UNSEEN else ""}test generators. '
        f"{esc(NOT_MEANINGFUL)}: no accuracy, the threshold is a fixed 0.5 on scores that need not be "
        "probabilities.</p>"
    )
    return table_html(headers, rows) + note


def _family_table(board: ProtocolBoard, names: Mapping[str, str]) -> str:
    families = list(dict.fromkeys(board.families[g] for g in board.generators))
    members = {f: [g for g in board.generators if board.families[g] == f] for f in families}
    rows: list[list[object]] = []
    for label in board.labels:
        cells: list[object] = []
        for family in families:
            values = metrics.average_metrics(
                [
                    {"auc": board.metric(label, g, "auc")} if (label, g, board.clean) in board.cells else None
                    for g in members[family]
                ]
            )
            cells.append(Cell(float(values["auc"]), text=fmt_value(values["auc"])))
        rows.append([names.get(label, label), *cells])
    headers = ["Detector", *(f"{f} ({len(members[f])})" for f in families)]
    return table_html(headers, rows) + '<p class="note">Mean ROC-AUC over the test generators of each family.</p>'


def _seen_unseen(board: ProtocolBoard, names: Mapping[str, str]) -> str:
    if set(board.groups) != {UNSEEN, SEEN}:
        return ""
    rows: list[list[object]] = []
    for label in board.labels:
        unseen, seen = (board.mean_cell(label, "auc", group) for group in (UNSEEN, SEEN))
        gap = seen.value - unseen.value
        rows.append(
            [names.get(label, label), seen, unseen, Cell(gap, text=f"{gap:+.3f}" if math.isfinite(gap) else "–")]
        )
    return "<h3>Seen vs unseen generators</h3>" + table_html(
        ["Detector", "Seen mean [95% CI]", "Unseen mean [95% CI]", "gap (seen − unseen)"], rows
    )


def _robustness(
    board: ProtocolBoard, names: Mapping[str, str], figures: Mapping[str, Sequence[Path]], page_dir: Path, anchor: str
) -> str:
    if len(board.perturbations) < 2:
        return ""
    rows: list[list[object]] = []
    for label in board.labels:
        cells = [board.mean_cell(label, "auc", board.rank_group, p) for p in board.perturbations]
        rows.append([names.get(label, label), *cells])
    found = ", ".join(s.name for s in find_sweeps(board.perturbations, board.clean))
    return (
        f"<h3>Robustness ({esc(GROUP_TITLES[board.rank_group].lower())} ROC-AUC per test perturbation)</h3>"
        + table_html(["Detector", *(condition(p) for p in board.perturbations)], rows)
        + _figure(figures, ROBUSTNESS, f"Robustness curves ({found}), 95% interval bands", page_dir, anchor)
    )


def _error_browser(board: ProtocolBoard, names: Mapping[str, str], thumbnails: Thumbnails) -> str:
    parts = []
    if len(board.labels) > ERROR_BROWSER_DETECTORS:
        parts.append(f'<p class="note">The {ERROR_BROWSER_DETECTORS} best-ranked of {len(board.labels)} detectors.</p>')
    for label in board.labels[:ERROR_BROWSER_DETECTORS]:
        lines = []
        for generator in board.generators:
            row = board.cells.get((label, generator, board.clean))
            if row is None:
                continue
            found, at_threshold = mistakes(row, board.store, ERRORS_PER_KIND)
            groups = []
            for false_positive in (True, False):
                chosen = [m for m in found if m.false_positive == false_positive]
                title = (
                    ("false positives" if false_positive else "false negatives")
                    if at_threshold
                    else ("most fake-looking reals" if false_positive else "most real-looking fakes")
                )
                thumbs = "".join(_thumb(m.image_id, m.score, row, thumbnails) for m in chosen) or "none"
                groups.append(f'<td><div class="muted">{esc(title)}</div><div class="thumbs">{thumbs}</div></td>')
            lines.append(f"<tr><td>{esc(generator)}</td>{''.join(groups)}</tr>")
        if lines:
            body = (
                '<table class="errors"><thead><tr><th>test generator</th><th>reals scored as fake</th>'
                "<th>fakes scored as real</th>"
            )
            parts.append(
                f"<h4>{esc(names.get(label, label))}</h4>{body}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
            )
    return "".join(parts)


def _thumb(image_id: str, score: float, row: Mapping[str, object], thumbnails: Thumbnails) -> str:
    found = thumbnails.css_class(image_file(image_id, row))
    name = Path(image_id).name
    picture = (
        f'<i class="{found}" role="img" aria-label="{esc(name)}"></i>' if found else '<span class="na">(no file)</span>'
    )
    return f'<span class="thumb" title="{esc(image_id)}">{picture}{esc(name)}<br>{score:.3g}</span>'


def _problems(board: ProtocolBoard) -> str:
    rows = [[label, status, ", ".join(cells), reason] for (label, status, reason), cells in problems(board).items()]
    return table_html(["Detector", "Status", "Where", "Reason"], rows) if rows else ""


def _provenance(board: ProtocolBoard) -> str:
    notes = "".join(f"<li>{esc(note)}</li>" for note in provenance_notes(board))
    per_row = [
        [
            r.get("label"),
            r.get("test_generator"),
            r.get("test_perturbation"),
            r.get("status"),
            r.get("row_id"),
            str(r.get("commit", ""))[:12],
            r.get("finished_at"),
        ]
        for r in board.rows
    ]
    return (
        table_html(PROVENANCE_HEADERS, provenance_rows(board))
        + f'<ul class="muted">{notes}</ul>'
        + table_html(["Detector", "test generator", "perturbation", "status", "row id", "commit", "finished"], per_row)
    )


def exports_section(paths: Sequence[Path], page_dir: Path) -> str:
    links = "".join(
        f'<li><a href="{esc(p.relative_to(page_dir).as_posix())}">{esc(p.relative_to(page_dir))}</a></li>'
        for p in paths
    )
    return (
        '<section id="exports"><h2>Exports</h2><p class="note">Per-image scores of every row (Parquet: row_id, '
        "protocol, detector, detector_name, generator, perturbation, path, label, score) and the tables as LaTeX "
        f"(booktabs).</p><ul>{links}</ul></section>"
    )


def _figure(figures: Mapping[str, Sequence[Path]], kind: str, caption: str, page_dir: Path, anchor: str) -> str:
    paths = figures.get(kind)
    return figure_html(list(paths), caption, page_dir, f"{anchor}-{kind}") if paths else ""


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-{slug(name)}"


__all__ = ["REPORT_FILE", "render_report"]
