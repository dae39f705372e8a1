"""Small HTML building blocks for the report and the comparison page: escaped tables whose headers sort on
click, figures inlined as SVG, folded sections, and the page shell (inline CSS and a few lines of vanilla JS).

The page is self-contained: no network, no external script or style; it works opened from ``file://``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .text import Cell, fmt_value

CSS = """
:root { --ink: #1b1b1b; --muted: #5f6368; --rule: #d0d4d9; --band: #f4f6f8; --accent: #0072B2; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1280px; padding: 0 24px 48px; }
h1 { font-size: 24px; margin: 24px 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px;
  border-bottom: 2px solid var(--rule); padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 6px; }
nav a { margin-right: 12px; } a { color: var(--accent); }
p.note, .muted { color: var(--muted); font-size: 12.5px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--band); position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th::after { content: " \\2195"; color: #aab; font-size: 11px; }
th[aria-sort="descending"]::after { content: " \\2193" !important; color: var(--ink) !important; }
th[aria-sort="ascending"]::after { content: " \\2191" !important; color: var(--ink) !important; }
td.best { font-weight: 700; } td small { color: var(--muted); } td.na { color: #9aa0a6; }
figure { margin: 10px 0 18px; } figure svg { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
table.errors td { text-align: left; vertical-align: top; }
.thumbs { display: flex; gap: 6px; flex-wrap: wrap; }
.thumb { display: inline-flex; flex-direction: column; align-items: center; font-size: 10.5px; color: var(--muted); }
.thumb i { display: block; width: 64px; height: 64px; background-position: center; background-size: contain;
  background-repeat: no-repeat;
  image-rendering: pixelated; border: 1px solid var(--rule); }
code { font-size: 12px; background: var(--band); padding: 0 3px; }
"""

# Sorting: a click on a header of a .sortable table orders its body rows by that column (numbers from
# data-value, else text); a second click reverses. Cells without a number (data-value="") stay last.
SCRIPT = """
function dfzooKey(cell) {
  var v = cell.getAttribute("data-value");
  return v === null ? cell.textContent.trim().toLowerCase() : (v === "" ? null : parseFloat(v));
}
document.querySelectorAll("table.sortable thead th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var down = th.getAttribute("aria-sort") !== "descending";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = dfzooKey(a.cells[column]), y = dfzooKey(b.cells[column]);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var order = typeof x === "number" ? x - y : (x < y ? -1 : x > y ? 1 : 0);
      return down ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

# What every page carries, each on one line (white space collapsed, once): a line break means nothing in CSS, nor in
# SCRIPT, whose statements all end in ";" or "}" and which holds no "//" comment.
ONE_LINE_CSS = " ".join(CSS.split())
ONE_LINE_SCRIPT = " ".join(SCRIPT.split())


def esc(value: Any) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value), quote=True)


def cell_html(value: Any, *, interval: bool = True) -> str:
    """A ``<td>``: a :class:`Cell` with ``data-value`` (for sorting), its interval in small type and bold when
    it stands clear of its column; any other value as escaped text."""
    if isinstance(value, Cell):
        number = value.value
        data = f"{number:.6g}" if math.isfinite(number) else ""
        low, high = value.interval
        extra = (
            f" <small>[{fmt_value(low)}, {fmt_value(high)}]</small>"
            if interval and math.isfinite(low) and math.isfinite(high)
            else ""
        )
        classes = " ".join(c for c in ("best" if value.bold else "", "" if math.isfinite(number) else "na") if c)
        attribute = f' class="{classes}"' if classes else ""
        return f'<td data-value="{data}"{attribute}>{esc(value.text or fmt_value(number))}{extra}</td>'
    if isinstance(value, float):
        data = f"{value:.6g}" if math.isfinite(value) else ""
        return f'<td data-value="{data}">{esc(fmt_value(value))}</td>'
    return f"<td>{esc(value)}</td>"


def table_html(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, sortable: bool = True, table_id: str = ""
) -> str:
    """A table (sortable by clicking its headers unless told otherwise); cells through :func:`cell_html`."""
    attributes = (' class="sortable"' if sortable else "") + (f' id="{esc(table_id)}"' if table_id else "")
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(cell_html(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table{attributes}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def inline_svg(path: Path, prefix: str) -> str:
    """The SVG file's ``<svg>`` element for inlining, its ids prefixed so several figures share a page."""
    text = path.read_text()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)  # matplotlib's RDF block: not shown
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'(href="#|url\(#)([^")]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text


def figure_html(paths: Sequence[Path], caption: str, page_dir: Path, prefix: str) -> str:
    """A figure: its SVG inlined, the caption, and links to the PNG / SVG / PDF files beside the page."""
    svg = next((p for p in paths if p.suffix == ".svg"), None)
    picture = (
        inline_svg(svg, prefix)
        if svg is not None
        else "".join(f'<img src="{esc(_link(p, page_dir))}" alt="{esc(caption)}">' for p in paths[:1])
    )
    links = " · ".join(f'<a href="{esc(_link(p, page_dir))}">{p.suffix[1:].upper()}</a>' for p in paths)
    return f'<figure class="figure">{picture}<figcaption>{esc(caption)} ({links})</figcaption></figure>'


def details_html(summary: str, body: str, *, open_: bool = False) -> str:
    """A folded section."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>" if body else ""


def page_html(title: str, header: str, sections: Sequence[str], style: str = "") -> str:
    """The whole page: inline CSS (plus ``style``), the header, the sections, the sorting script."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{ONE_LINE_CSS}\n{style}</style></head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{header}\n"
        + "\n".join(s for s in sections if s)
        + f"\n<script>{ONE_LINE_SCRIPT}</script>\n</body></html>\n"
    )


def _link(path: Path, page_dir: Path) -> str:
    try:
        return path.resolve().relative_to(page_dir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


__all__ = [
    "cell_html",
    "details_html",
    "esc",
    "figure_html",
    "inline_svg",
    "page_html",
    "table_html",
]
