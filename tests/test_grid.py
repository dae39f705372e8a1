"""The frozen-feature grid: TOML -> harness protocols of probe cells -> store rows -> summary and plots."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dfzoo.benchmark.store import ResultStore
from dfzoo.plugins.detectors._probe.grid import (
    GridError,
    default_grid,
    expand_grid,
    load_grid,
    parse_grid,
    read_cells,
    run_grid,
)
from dfzoo.plugins.detectors._probe.grid_plots import (
    cross_matrix,
    feature_plots,
    grid_cells,
    grid_report,
    mean_by,
    transform_matrix,
)
from tests.synthetic import write_folder_dataset

GRID = """
name = "tiny"
seed = 0
bootstrap = 0
backbones = ["tiny_cnn"]
reductions = ["none", "pca"]
classifiers = ["logreg", "knn3"]
train_transforms = ["none", "blur"]
test_transforms = ["none", "jpeg"]
pairs = [["a", "a"], ["a", "b"]]

[sets.a]
dataset = "data"
generators = ["gan_a"]

[sets.b]
dataset = "data"
generators = ["gan_b"]

[reduction_options.pca]
n_components = 4
"""


@pytest.fixture
def grid_file(folder_dataset):
    path = folder_dataset.parent / "grid.toml"  # "data" is relative to the grid file's folder
    path.write_text(GRID)
    return path


def test_expansion_gives_one_protocol_per_pair_and_train_transform(registry, grid_file, tmp_path):
    grid = load_grid(grid_file)
    assert grid.n_cells == 2 * 2 * 1 * 2 * 2 * 2
    cells, notes = expand_grid(grid, registry, tmp_path / "work")
    assert notes == []
    assert [c.protocol.name for c in cells] == [
        "tiny.a-to-a.train-none",
        "tiny.a-to-a.train-blur",
        "tiny.a-to-b.train-none",
        "tiny.a-to-b.train-blur",
    ]
    first = cells[0].protocol
    assert first.train_generators == ("gan_a",) and first.test_generators == ("gan_a",)
    assert cells[2].protocol.test_generators == ("gan_b",)
    assert [c.protocol.train_perturbation for c in cells] == ["none", "blur", "none", "blur"]
    assert all(c.protocol.perturbations == ("none", "jpeg") for c in cells)
    assert all(c.protocol.bootstrap == 0 and c.protocol.offline_only for c in cells)
    labels = [d.label for d in first.detectors]
    assert labels == [
        f"probe[backbone=tiny_cnn,reduction={r},classifier={c}]" for r in ("none", "pca") for c in ("logreg", "knn3")
    ]
    pca = [d for d in first.detectors if d.params["reduction"] == "pca"]
    assert all(d.params["reduction_options"] == {"n_components": 4} for d in pca)
    assert all("reduction_options" not in d.params for d in first.detectors if d.params["reduction"] == "none")
    assert (cells[0].train_set, cells[3].test_set, cells[3].train_transform) == ("a", "b", "blur")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"classifiers": ["svc"]}, "unknown svc"),
        ({"reductions": ["umap"]}, "unknown umap"),
        ({"pairs": [["a", "z"]]}, "unknown set"),
        ({"colour": "red"}, "unknown key"),
        ({"probe": {"classifier": "svm"}}, "grid's own axes"),
        ({"sets": {}}, "no sets"),
    ],
)
def test_malformed_grids_are_clear_errors(change, message):
    data = {"name": "g", "sets": {"a": {"dataset": "zoo"}}, **change}
    with pytest.raises(GridError, match=message):
        parse_grid(data)


def test_all_expands_to_every_classifier_and_pairs_to_every_ordered_pair():
    grid = parse_grid(
        {
            "sets": {"a": {"dataset": "x"}, "b": {"dataset": "x"}, "c": {"dataset": "x"}},
            "classifiers": "all",
            "pairs": "all",
        }
    )
    assert len(grid.classifiers) == 12 and len(grid.pairs) == 9 and ("c", "a") in grid.pairs
    assert parse_grid({"sets": {"a": {"dataset": "x"}}}).pairs == (("a", "a"),)


def test_unavailable_backbones_are_left_out_with_a_note(registry, grid_file, tmp_path):
    grid = load_grid(grid_file)
    with_missing = parse_grid(
        {**_data(grid_file), "backbones": ["tiny_cnn", "resnet50", "tiny_cnn+resnet50"]}, base_dir=str(grid_file.parent)
    )
    cells, notes = expand_grid(with_missing, registry, tmp_path)
    assert {d.params["backbone"] for d in cells[0].protocol.detectors} == {"tiny_cnn"}
    assert len(notes) == 2 and all("resnet50_in1k" in n for n in notes)
    only_missing = parse_grid({**_data(grid_file), "backbones": ["resnet50"]}, base_dir=str(grid_file.parent))
    with pytest.raises(GridError, match="no backbone resolves"):
        expand_grid(only_missing, registry, tmp_path)
    assert grid.backbones == ("tiny_cnn",)


def _data(path):
    import tomllib

    return tomllib.loads(path.read_text())


def test_grid_runs_through_the_harness_into_store_and_summary(registry, grid_file, tmp_path):
    grid = parse_grid(
        {**_data(grid_file), "train_transforms": ["none"], "classifiers": ["logreg"]}, base_dir=str(grid_file.parent)
    )
    store = tmp_path / "store"
    summary, _ = run_grid(grid, store, registry, progress=False)
    rows = ResultStore(store).rows()
    assert summary.rows_error == 0 and len(rows) == summary.rows_ok == 2 * 2 * 2  # pairs x probes x test transforms
    assert {r["test_perturbation"] for r in rows} == {"none", "jpeg"}
    assert {r["train_perturbation"] for r in rows} == {"none"}
    assert {r["describe"]["reduction"] for r in rows} == {"none", "pca"}
    assert all(r["describe"]["backbone"] == "tiny_cnn" and r["threshold_policy"] == "detector" for r in rows)
    jpeg = next(r for r in rows if r["test_perturbation"] == "jpeg")
    clean = next(
        r
        for r in rows
        if r["test_perturbation"] == "none" and r["label"] == jpeg["label"] and r["protocol"] == jpeg["protocol"]
    )
    scores = [ResultStore(store).load_scores(r["row_id"])[1] for r in (clean, jpeg)]
    assert not np.allclose(*scores)  # the test transform really reached the images
    assert set(read_cells(store)) == {"tiny.a-to-a.train-none", "tiny.a-to-b.train-none"}

    cells = grid_cells(store)
    assert len(cells) == 2 * 2 * 2
    assert mean_by(cells, "reduction").keys() == {"none", "pca"}
    trains, tests, matrix = cross_matrix(cells)
    assert trains == ["a"] and tests == ["a", "b"] and np.isfinite(matrix).all()
    assert matrix[0, 0] > 0.8  # the planted artefact is learned within a set
    report = grid_report(store, tmp_path / "report", grid="tiny")
    text = report.read_text()
    assert "## By classifier" in text and "logreg" in text and "cross-mean.png" in text
    for name in (
        "auc-by-classifier",
        "auc-by-backbone",
        "auc-by-reduction",
        "auc-by-train-transform",
        "auc-by-test-transform",
        "cross-mean",
        "cross-max",
        "transforms",
    ):
        assert (tmp_path / "report" / "grid-plots" / f"{name}.png").stat().st_size > 1000

    again, _ = run_grid(grid, store, registry, progress=False)
    assert again.jobs_run == 0 and again.jobs_complete == 4  # resumable: every cell already stored


def test_cross_dataset_pair_trains_on_all_of_a_and_tests_on_all_of_b(registry, folder_dataset, tmp_path):
    other = write_folder_dataset(tmp_path / "other", {"gan_c": 3}, per_class=6, seed=7)
    grid = parse_grid(
        {
            "name": "x",
            "sets": {"a": {"dataset": str(folder_dataset), "generators": ["gan_a"]}, "c": {"dataset": str(other)}},
            "pairs": [["a", "c"]],
            "backbones": ["tiny_cnn"],
            "bootstrap": 0,
        }
    )
    cells, _ = expand_grid(grid, registry, tmp_path / "work")
    protocol = cells[0].protocol
    assert protocol.layout == "manifest" and protocol.train_generators == ("a/gan_a",)
    assert protocol.test_generators == ("c/gan_c",)
    with open(protocol.dataset, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["split"] for r in rows if r["generator"] == "a/gan_a"} == {"train"}
    assert {r["split"] for r in rows if r["generator"] == "c/gan_c"} == {"test"}
    assert not any("gan_b" in r["path"] for r in rows)  # generators outside the set stay out
    assert len(rows) == 24 + 12
    summary, _ = run_grid(grid, tmp_path / "store", registry, progress=False)
    (row,) = summary.rows
    assert row["status"] == "ok", row.get("error")
    assert {k: v for k, v in row["counts"].items() if not k.endswith("_distinct")} == {
        "train_real": 12,
        "train_fake": 12,
        "test_real": 6,
        "test_fake": 6,
        "test_in_train": 0,
    }


def test_default_grid_is_the_zoo_with_every_classifier():
    grid = default_grid()
    assert {s.dataset for s in grid.sets.values()} == {"zoo"}
    assert sorted(g for s in grid.sets.values() for g in s.generators) == sorted(
        ["gan_tconv", "gan_upsample", "diff_ddpm", "diff_ddim", "ae_vae", "ae_plain"]
    )
    assert len(grid.classifiers) == 12 and grid.reductions == ("none", "pca", "ae")
    assert "efficientnet_lite0" in grid.backbones and grid.skip_unavailable


def test_feature_plots_write_pca_and_tsne(tmp_path):
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(0, 1, (20, 8)), rng.normal(3, 1, (20, 8))])
    features[3] = np.nan  # an undecodable image is dropped, not plotted
    labels = [0] * 20 + [1] * 20
    generators = ["real"] * 20 + ["gan"] * 10 + ["diffusion"] * 10
    paths = feature_plots(features, labels, generators, tmp_path / "f", title="toy")
    assert [p.name for p in paths] == ["f-pca.png", "f-tsne.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_transform_matrix_puts_clean_first():
    cells = [
        {"train_transform": t, "test_transform": s, "auc": a}
        for t, s, a in [("blur", "none", 0.6), ("none", "jpeg", 0.7), ("none", "none", 0.9)]
    ]
    trains, tests, matrix = transform_matrix(cells)
    assert trains == ["none", "blur"] and tests == ["none", "jpeg"]
    assert matrix[0, 0] == 0.9 and np.isnan(matrix[1, 1])


def test_grid_command_dry_run_and_run(registry, grid_file, tmp_path, capsys):
    from dfzoo.cli import main

    assert main(["grid", str(grid_file), "--store", str(tmp_path / "s"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "tiny.a-to-b.train-blur" in out and "4 protocol(s) x 4 probe(s) = 16 fits" in out
    code = main(
        [
            "grid",
            str(grid_file),
            "--store",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "r"),
            "--classifier",
            "logreg",
            "--reduction",
            "none",
            "--train-transform",
            "none",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "2 job(s) run" in out
    assert (tmp_path / "r" / "grid.md").exists() and (tmp_path / "r" / "README.md").exists()
    assert (tmp_path / "r" / "grid-plots" / "features-tiny_cnn-tsne.png").exists()
    rows = ResultStore(tmp_path / "s").rows()
    assert {r["label"] for r in rows} == {"probe[backbone=tiny_cnn,reduction=none,classifier=logreg]"}
    json.dumps(rows)
