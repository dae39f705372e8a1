"""The HTML report and its exports, rendered from a store with every shape the report knows (a protocol with
a seen generator, two families and a JPEG sweep; a leave-one-out group; a cross-dataset protocol)."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.benchmark.selection import short_labels
from dfzoo.benchmark.store import ResultStore
from dfzoo.benchmark.sweeps import expand_sweep, find_sweeps
from tests import chromium
from tests.store_kit import N_FAKE, N_REAL, REPORT_DETECTORS, SWEEP, report_store


class Page(HTMLParser):
    """Tags, ids and table header rows of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.ids: list[str] = []
        self.headers: list[list[str]] = []
        self._header: list[str] | None = None
        self._in_th = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "thead":
            self._header = []
        elif tag == "th":
            self._in_th = True
            if self._header is not None:
                self._header.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead" and self._header is not None:
            self.headers.append(self._header)
            self._header = None
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        if self._in_th and self._header:
            self._header[-1] += data


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dfzoo.cli import main

    root = tmp_path_factory.mktemp("report")
    report_store(root / "store", root / "images")
    assert main(["report", "--store", str(root / "store"), "--out", str(root / "out")]) == 0
    return root


def test_sweep_syntax_expands_and_is_read_back() -> None:
    assert expand_sweep("jpeg:quality=95,90,75") == ["jpeg:quality=95", "jpeg:quality=90", "jpeg:quality=75"]
    assert expand_sweep("jpeg:quality=75") == ["jpeg:quality=75"] and expand_sweep("none") == ["none"]
    assert expand_sweep("x:a=1,2,b=3,4") == ["x:a=1,b=3", "x:a=1,b=4", "x:a=2,b=3", "x:a=2,b=4"]
    protocol = parse_protocol(
        {"name": "s", "dataset": "zoo", "perturbations": ["none", "blur:sigma=0.5,1,2", "downscale:scale=0.5"]}
    )
    assert protocol.perturbations == ("none", "blur:sigma=0.5", "blur:sigma=1", "blur:sigma=2", "downscale:scale=0.5")
    found = find_sweeps(protocol.perturbations, "none")
    assert [(s.name, s.points) for s in found] == [("blur sigma", ("0.5", "1", "2")), ("downscale scale", ("0.5",))]


def test_short_labels_name_what_differs() -> None:
    rows = [
        {"label": "a[x=1]", "detector": "a", "params": {"x": 1, "y": 2}},
        {"label": "a[x=2]", "detector": "a", "params": {"x": 2, "y": 2}},
        {"label": "b[long=...]", "detector": "b", "params": {"long": "z" * 80}},
        {"label": "old", "detector": "old"},
    ]
    assert short_labels(rows) == {"a[x=1]": "a (x=1)", "a[x=2]": "a (x=2)", "b[long=...]": "b", "old": "old"}


def test_report_page_holds_every_section(rendered: Path) -> None:
    text = (rendered / "out" / "report.html").read_text()
    page = Page(text)
    for fetch in ('src="http', 'href="http', "url(http", "<link", "@import"):  # nothing fetched from a network
        assert fetch not in text, fetch
    assert len(page.ids) == len(set(page.ids)), "duplicate element ids (inlined SVGs must be prefixed)"
    overview = page.headers[0]
    assert overview == ["Detector", "p", "xd", "logo (leave-one-out)"]  # "broken" has no result: no column
    assert ["Detector", "g1", "g2", "Mean [95% CI]"] in page.headers  # leave-one-out: held-out columns + mean
    assert ["Detector", "zoo", "other", "Mean [95% CI]"] in page.headers  # cross-dataset
    assert ["Detector", "clean", *SWEEP] in page.headers  # robustness table
    assert ["Detector", "Seen mean [95% CI]", "Unseen mean [95% CI]", "gap (seen − unseen)"] in page.headers
    assert ["Detector", "gan (3)", "diffusion (1)"] in page.headers  # per family (g_train, g1, g2 | d1)
    # figures: p has heatmap, ROC, log ROC, robustness; xd a heatmap and two ROC figures; folds none
    assert page.tags["svg"] == page.tags["figure"] == 4 + 3
    assert "probe (backbone=a)" in text and "probe[backbone=a]" in text  # shown name; full label in provenance
    shown = text.count('role="img"')  # thumbnails: CSS classes, each image's data stored once in the page
    assert shown >= 2 * 4 * len(REPORT_DETECTORS) and "(no file)" not in text  # every recorded path was found
    assert 0 < text.count("data:image/png;base64,") < shown
    assert "TPR@1%FPR" in text and "Error browser" in text and "Provenance" in text and "RuntimeError" in text


def test_figures_and_exports_beside_the_page(rendered: Path) -> None:
    import pyarrow.parquet as pq

    out = rendered / "out"
    for kind in ("auc", "roc", "roc-log", "robustness"):
        for suffix in ("png", "svg", "pdf"):
            assert (out / "plots" / f"p-{kind}.{suffix}").stat().st_size > 1000
    table = pq.read_table(out / "scores.parquet")
    assert table.column_names == [
        "row_id", "protocol", "detector", "detector_name", "generator", "perturbation", "path", "label", "score",
    ]  # fmt: skip
    ok_rows = [r for r in ResultStore(rendered / "store").rows() if r["status"] == "ok"]
    assert table.num_rows == len(ok_rows) * (N_FAKE + N_REAL)
    assert set(table.column("detector").to_pylist()) == set(REPORT_DETECTORS)
    assert sum(table.column("label").to_pylist()) == len(ok_rows) * N_FAKE
    overview = (out / "tables" / "overview.tex").read_text()
    assert r"\toprule" in overview and r"\bottomrule" in overview and r"\textbf{" in overview
    assert overview.count(r" \\") == 1 + len(REPORT_DETECTORS)  # header + one line per detector
    assert {p.name for p in (out / "tables").iterdir()} >= {
        "p-auc.tex",
        "logo-leave-one-out.tex",
        "xd-cross-dataset.tex",
    }
    # a fold trains and tests on one dataset: no cross-dataset table for it although its rows name test_dataset
    assert not any(p.name.startswith("logo-loo") and "cross-dataset" in p.name for p in (out / "tables").iterdir())


@pytest.mark.skipif(not chromium.available(), reason=chromium.SKIP_REASON)
def test_report_in_a_real_browser(rendered: Path, tmp_path: Path) -> None:
    """Headless Chromium opens the page from disk: tables and figures render, sorting works, nothing is
    fetched from a network and nothing is logged as an error; a screenshot is kept."""
    with chromium.Chromium() as browser:
        tab = browser.open((rendered / "out" / "report.html").as_uri())
        counts = tab.evaluate(
            "({tables: document.querySelectorAll('table').length,"
            " figures: document.querySelectorAll('figure svg').length,"
            " drawn: Array.from(document.querySelectorAll('figure svg')).filter(s => s.getBBox().width > 100).length,"
            " thumbs: Array.from(document.querySelectorAll('.thumb i'))"
            "   .filter(i => getComputedStyle(i).backgroundImage.startsWith('url(\"data:image/png')).length})"
        )
        assert counts["tables"] >= 10 and counts["figures"] == counts["drawn"] == 7 and counts["thumbs"] > 0
        first_column = (
            "Array.from(document.querySelectorAll('#overview-table tbody tr')).map(r => r.cells[0].textContent)"
        )
        values = "Array.from(document.querySelectorAll('#overview-table tbody tr')).map(r => +r.cells[1].dataset.value)"
        click = "document.querySelectorAll('#overview-table thead th')[{}].click()"
        tab.evaluate(click.format(1))  # "p": highest first
        descending = tab.evaluate(values)
        assert descending == sorted(descending, reverse=True) and len(descending) == len(REPORT_DETECTORS)
        assert tab.evaluate(first_column)[0] == "probe (backbone=a)"
        tab.evaluate(click.format(1))  # again: lowest first
        assert tab.evaluate(values) == sorted(descending)
        tab.evaluate(click.format(0))  # by name
        assert tab.evaluate(first_column) == sorted(tab.evaluate(first_column), key=str.lower, reverse=True)
        shot = tab.screenshot(tmp_path / "report.png")
        assert tab.errors() == []
        assert all(url.startswith(("file:", "data:")) for url in tab.requests()), tab.requests()
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width >= 1000 and image.height > 2000
