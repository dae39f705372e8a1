"""Leaderboard rendering from a real (tiny) result store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.leaderboard import flatten_extra, render_leaderboard, summary_table
from dfzoo.benchmark.store import ResultStore
from dfzoo.registry import Registry
from tests.kit import TINY_GENERATORS, tiny_protocol


@pytest.fixture
def filled_store(bench_registry: Registry, tiny_data: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    detectors = [{"name": "hf_energy"}, {"name": "hf_energy", "params": {"fail": "fit"}}, {"name": "needs_weights"}]
    run_benchmark(
        tiny_protocol(tiny_data, detectors=detectors, offline_only=True), store, registry=bench_registry, progress=False
    )
    run_benchmark(
        tiny_protocol(tiny_data, name="tiny-b", train_generators=["gan_b"], perturbations=["none"]),
        store,
        registry=bench_registry,
        progress=False,
    )
    return store


def test_markdown_csv_json_and_plots(filled_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    written = render_leaderboard(filled_store, out)
    markdown = (out / "README.md").read_text()
    assert out / "README.md" in written and out / "results.csv" in written and out / "results.json" in written
    for name in (
        "## tiny",
        "## tiny-b",
        "hf_energy",
        *TINY_GENERATORS,
        "gan_a (train)",
        "ROC-AUC",
        "Average precision",
        "acc@thr",
        "real acc",
        "fake acc",
        "Robustness",
        "jpeg:quality=75",
        "Skipped and failed",
        "hf_energy[fail=fit]",
        "fit exploded on purpose",
        "needs_weights",
        "absent_weights",
        "Provenance",
        "laplacian-energy",
        "Unseen mean [95% CI]",
        "Seen mean [95% CI]",
    ):
        assert name in markdown, name
    # extra metrics are rendered generically: flattened keys and the confusion matrix as a table
    assert "per_family.gan" in markdown and "**confusion** on gan_a" in markdown
    pngs = [p for p in written if p.suffix == ".png"]
    assert {p.name for p in pngs} == {
        *(f"tiny-{kind}.png" for kind in ("auc", "roc", "roc-log", "robustness")),
        *(f"tiny-b-{kind}.png" for kind in ("auc", "roc", "roc-log")),  # tiny-b has no perturbation to sweep
    }
    for png in pngs:
        assert png.stat().st_size > 5000
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200
        assert png.with_suffix(".svg") in written and png.with_suffix(".pdf") in written  # for papers
    for name in ("tiny-auc.png", "tiny-roc.png", "tiny-b-auc.png"):
        assert f"plots/{name}" in markdown
    assert out / "report.html" in written and out / "scores.parquet" in written
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    stored = ResultStore(filled_store).rows()
    assert len(rows) == len(stored) and {r["status"] for r in rows} == {"ok", "error", "skipped"}
    ok = next(r for r in rows if r["status"] == "ok" and r["test_generator"] == "gan_b")
    assert float(ok["auc_ci_low"]) <= float(ok["auc"]) <= float(ok["auc_ci_high"])
    document = json.loads((out / "results.json").read_text())
    assert len(document["rows"]) == len(stored)
    tiny = {entry["label"]: entry for entry in document["protocols"]["tiny"]}
    # tiny trains on gan_a: the mean over the two unseen generators ranks, gan_a has a mean of its own
    assert tiny["hf_energy"]["rank_group"] == "unseen"
    assert tiny["hf_energy"]["mean"]["none"]["unseen"]["n_sets"] == 2
    assert tiny["hf_energy"]["mean"]["none"]["seen"]["n_sets"] == 1
    low, high = tiny["hf_energy"]["mean_ci"]["unseen"]["auc_ci"]
    assert low <= tiny["hf_energy"]["mean"]["none"]["unseen"]["auc"] <= high
    assert tiny["hf_energy[fail=fit]"]["status"]["error"] == 6
    # the same store renders the same files (no wall-clock stamps)
    again = tmp_path / "again"
    render_leaderboard(filled_store, again, plots=False)
    assert (again / "README.md").read_text() == markdown


def test_latest_row_wins_and_summary_table(
    filled_store: Path,
    bench_registry: Registry,
    tiny_data: Path,
    tmp_path: Path,
) -> None:
    # a changed setting for the same protocol name recomputes its cells; the board shows only the newest
    run_benchmark(
        tiny_protocol(tiny_data, name="tiny-b", train_generators=["gan_b"], perturbations=["none"], cap_per_class=5),
        filled_store,
        registry=bench_registry,
        progress=False,
    )
    render_leaderboard(filled_store, tmp_path / "board", plots=False)
    document = json.loads((tmp_path / "board" / "results.json").read_text())
    tiny_b = [r for r in document["rows"] if r["protocol"] == "tiny-b"]
    assert len(tiny_b) == 3 and all(r["cap_per_class"] == 5 for r in tiny_b)
    older = document["older_configurations"]
    assert [(o["protocol"], o["rows"]) for o in older] == [("tiny-b", 3)]
    assert older[0]["protocol_hash"] != tiny_b[0]["protocol_hash"]
    assert "Older results not shown" in (tmp_path / "board" / "README.md").read_text()
    table = summary_table(filled_store)
    # detectors are named by what tells their configurations apart, not their whole parameter string
    assert "hf_energy (fail=fit)" in table and 'hf_energy (fail="")' in table
    assert "6 error" in table and "tiny-b" in table


def test_unscored_images_are_listed(bench_registry: Registry, tmp_path: Path) -> None:
    from tests.kit import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "tiny", corrupt=True)
    run_benchmark(
        tiny_protocol(data, perturbations=["none"]), tmp_path / "store", registry=bench_registry, progress=False
    )
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    assert "images not scored" in markdown and "gan_b/none" in markdown and "1 NaN score(s)" in markdown


def test_pipes_in_cells_do_not_break_tables() -> None:
    from dfzoo.benchmark.text import tabulate as _tabulate

    table = _tabulate([["a", "log|F|"]], ["x", "y"])
    assert all(line.count("|") - line.count("\\|") == 3 for line in table.splitlines())


def test_flatten_extra() -> None:
    scalars, matrices = flatten_extra(
        {
            "a": {"b": 1, "c": {"d": 0.5}},
            "m": [[1, 2], [3, 4]],
            "named": {"labels": ["x", "y"], "matrix": [[1, 0], [0, 1]]},
            "list": [1, 2, 3],
        }
    )
    assert scalars == {"a.b": 1, "a.c.d": 0.5, "list": "1, 2, 3"}
    assert [key for key, _ in matrices] == ["m", "named"]


def test_empty_store_renders(tmp_path: Path) -> None:
    written = render_leaderboard(tmp_path / "nothing", tmp_path / "board")
    assert "0 result rows" in (tmp_path / "board" / "README.md").read_text()
    assert not [p for p in written if p.suffix == ".png"]


def test_check_passes_on_a_harness_store(filled_store: Path) -> None:
    """The harness's rows are recomputable from their sidecars with the row's threshold, bootstrap and seed."""
    from dfzoo.benchmark.check import check_store

    report = check_store(filled_store)
    assert report.ok, [str(p) for p in report.problems]
    assert report.rows_checked == sum(r.get("status") == "ok" for r in ResultStore(filled_store).rows()) > 0
