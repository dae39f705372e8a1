"""The benchmark harness end to end on a tiny generated dataset with a real (if simple) detector.

The kit (``HFEnergy``, the tinyzoo dataset plugin, a detector whose weights never resolve) is in tests/kit.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dfzoo
from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.store import ResultStore
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry
from tests.kit import (
    TINY_GENERATORS,
    BenchmarkTestPlugin,
    HFEnergy,
    load_tiny_dataset,
    tiny_protocol,
    write_tiny_dataset,
)


# -- tests -----------------------------------------------------------------------------------------------
def test_end_to_end_rows(bench_registry: Registry, tiny_data: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    summary = run_benchmark([tiny_protocol(tiny_data)], store_dir, registry=bench_registry, progress=False)
    rows = ResultStore(store_dir).rows()
    assert summary.rows_ok == 6 and len(rows) == 6 and summary.jobs_run == 1
    assert {(r["test_generator"], r["test_perturbation"]) for r in rows} == {
        (g, p) for g in TINY_GENERATORS for p in ("none", "jpeg:quality=75")
    }
    clean = {r["test_generator"]: r for r in rows if r["test_perturbation"] == "none"}
    assert clean["gan_a"]["metrics"]["auc"] > 0.95 and clean["gan_b"]["metrics"]["auc"] > 0.9
    assert clean["gan_a"]["seen_in_training"] and not clean["gan_b"]["seen_in_training"]
    assert clean["diff_c"]["test_family"] == "diffusion"
    row = clean["gan_b"]
    assert row["label"] == "hf_energy" and row["params"] == {"fail": ""} and len(row["params_hash"]) == 12
    assert row["describe"] == {"feature": "laplacian-energy", "weights": "none"}
    # no threshold stated by the detector: the harness sets one at 5 % FPR on the clean training reals
    assert row["threshold_policy"] == "train_real_quantile" and row["threshold_fpr"] == 0.05
    assert 0.0 < row["threshold"] < 1.0 and row["metrics"]["real_acc"] >= 0.75  # few held-out reals
    assert row["dataset"]["name"] == "tinyzoo" and len(row["dataset"]["fingerprint"]) == 16
    assert row["dataset"]["content_sha256"] == "c" * 64 and row["dataset"]["reference_match"] is True
    assert row["train_generators"] == ["gan_a"] and row["preprocess"]["key"] == "resize:model"
    assert {"python", "torch", "numpy", "sklearn", "dfzoo", "timm", "open_clip", "diffusers"} <= set(row["versions"])
    assert row["commit"]  # a hash in a checkout, else "unknown"
    assert row["extra"]["confusion"][1][1] > 0 and row["fit_seconds"] >= 0
    # gan_b was never trained on: all its 12 fakes; shared reals: only the test part (disjoint from training)
    assert row["counts"]["test_fake"] == 12 and 0 < row["counts"]["test_real"] < 24
    assert row["counts"]["train_real"] + row["counts"]["test_real"] == 24
    low, high = row["metrics"]["auc_ci"]
    assert low <= row["metrics"]["auc"] <= high
    labels, scores = ResultStore(store_dir).load_scores(row["row_id"])
    assert labels.sum() == 12 and len(scores) == row["counts"]["test_real"] + 12
    assert (store_dir / "models" / row["job_id"] / "dfzoo-detector.json").exists()
    # shared reals are scored once per perturbation, not once per test generator (+1: the training reals that
    # set the threshold)
    assert sum(HFEnergy.score_calls.values()) == 6 + 1


def test_rerun_skips_finished_rows(bench_registry: Registry, tiny_data: Path, tmp_path: Path) -> None:
    protocol = tiny_protocol(tiny_data)
    run_benchmark(protocol, tmp_path / "store", registry=bench_registry, progress=False)
    again = run_benchmark(protocol, tmp_path / "store", registry=bench_registry, progress=False)
    assert again.rows == [] and again.jobs_complete == 1 and again.jobs_run == 0
    assert HFEnergy.fit_calls[""] == 1
    assert len(ResultStore(tmp_path / "store").rows()) == 6
    # A changed setting is a different job: its rows are computed (and the model fitted) afresh.
    changed = run_benchmark(
        tiny_protocol(tiny_data, cap_per_class=6), tmp_path / "store", registry=bench_registry, progress=False
    )
    assert changed.rows_ok == 6 and HFEnergy.fit_calls[""] == 2
    assert all(r["counts"]["test_fake"] <= 6 for r in changed.rows)


def test_resume_after_interrupt(bench_registry: Registry, tiny_data: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    protocol = tiny_protocol(tiny_data)
    HFEnergy.interrupt_after = 3  # the fourth scoring call is interrupted (threshold, then one call per row)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(protocol, store_dir, registry=bench_registry, progress=False)
    first = ResultStore(store_dir).rows()
    assert len(first) == 2 and all(r["status"] == "ok" for r in first)
    assert HFEnergy.fit_calls[""] == 1
    HFEnergy.interrupt_after = None
    resumed = run_benchmark(protocol, store_dir, registry=bench_registry, progress=False)
    assert resumed.rows_ok == 4 and HFEnergy.fit_calls[""] == 1  # the saved model was reused, not refitted
    assert all(r["model_reused"] for r in resumed.rows)
    rows = ResultStore(store_dir).rows()
    assert len({r["key"] for r in rows}) == 6 == len(rows)
    # reloaded model gives the same numbers as a fresh fit would: compare against a clean run
    fresh = run_benchmark(protocol, tmp_path / "fresh", registry=bench_registry, progress=False)
    by_key = {(r["test_generator"], r["test_perturbation"]): r["metrics"]["auc"] for r in fresh.rows}
    for r in rows:
        assert r["metrics"]["auc"] == pytest.approx(by_key[(r["test_generator"], r["test_perturbation"])])


def test_raising_detectors_are_recorded_and_others_go_on(
    bench_registry: Registry, tiny_data: Path, tmp_path: Path
) -> None:
    detectors = [{"name": "hf_energy", "params": {"fail": stage}} for stage in ("factory", "fit", "score")]
    protocol = tiny_protocol(tiny_data, perturbations=["none"], detectors=[*detectors, {"name": "hf_energy"}])
    summary = run_benchmark(protocol, tmp_path / "store", registry=bench_registry, progress=False)
    by_label: dict[str, list[dict]] = {}
    for row in summary.rows:
        by_label.setdefault(row["label"], []).append(row)
    assert [r["status"] for r in by_label["hf_energy"]] == ["ok"] * 3
    for stage in ("factory", "fit", "score"):
        rows = by_label[f"hf_energy[fail={stage}]"]
        assert len(rows) == 3 and all(r["status"] == "error" for r in rows)
        assert {r["error"]["stage"] for r in rows} == {stage}
        assert "exploded on purpose" in rows[0]["error"]["message"]
        assert "Traceback" in rows[0]["error"]["traceback"]
    assert by_label["hf_energy[fail=score]"][0]["error"]["type"] == "ValueError"
    # errors are retried on the next run; finished rows are not
    again = run_benchmark(protocol, tmp_path / "store", registry=bench_registry, progress=False)
    assert again.rows_ok == 0 and again.rows_error == 9


def test_offline_only_records_skipped_detectors_once(bench_registry: Registry, tiny_data: Path, tmp_path: Path) -> None:
    protocol = tiny_protocol(tiny_data, perturbations=["none"], offline_only=True, detectors=[{"name": "*"}])
    summary = run_benchmark(protocol, tmp_path / "store", registry=bench_registry, progress=False)
    skipped = [r for r in summary.rows if r["status"] == "skipped"]
    assert {r["label"] for r in skipped} == {"needs_weights"} and len(skipped) == 3
    assert "absent_weights" in skipped[0]["reason"]
    assert summary.rows_ok == 3  # hf_energy ran
    again = run_benchmark(protocol, tmp_path / "store", registry=bench_registry, progress=False)
    assert again.rows == []  # the same skip is not written twice


def test_nan_scores_are_counted_with_reasons(bench_registry: Registry, tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "tiny", corrupt=True)
    summary = run_benchmark(
        tiny_protocol(data, perturbations=["none"]), tmp_path / "store", registry=bench_registry, progress=False
    )
    row = next(r for r in summary.rows if r["test_generator"] == "gan_b")
    assert row["status"] == "ok" and row["n_skipped"] == 1
    assert row["metrics"]["n_nan"] == 1 and row["metrics"]["n_fake"] == 12
    ((reason, count),) = row["skipped_reasons"].items()
    assert count == 1 and "image" in reason


def test_store_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.append({"key": "a", "status": "ok", "value": float("nan")})
    with open(store.results, "ab") as handle:
        handle.write(b'{"key": "b", "sta')  # the process died mid-write
    assert [r["key"] for r in store.rows()] == ["a"]
    assert store.rows()[0]["value"] is None
    store.append({"key": "c", "status": "ok"})
    assert [r["key"] for r in store.rows()] == ["a", "c"]
    assert store.done_keys() == {"a", "c"}


def test_folder_dataset_through_layouts(bench_registry: Registry, tmp_path: Path) -> None:
    """A ForenSynths folder (per-generator reals) given as a path relative to the protocol file."""
    pytest.importorskip("dfzoo.data.layouts")
    import dfzoo.plugins.datasets.layouts as datasets
    import dfzoo.plugins.perturbations.standard as perturbations
    from tests.synthetic import write_folder_dataset

    registry = Registry(
        get_plugin_manager(
            builtins=False, autoload=False, extra_plugins=(perturbations, datasets, BenchmarkTestPlugin())
        )
    )
    write_folder_dataset(tmp_path / "data")
    (tmp_path / "p.toml").write_text(
        'dataset = "data"\ntrain_generators = ["gan_a"]\nperturbations = ["none"]\n'
        'bootstrap = 0\n[[detectors]]\nname = "hf_energy"\n'
    )
    summary = run_benchmark([tmp_path / "p.toml"], tmp_path / "store", registry=registry, progress=False)
    rows = {r["test_generator"]: r for r in summary.rows}
    assert set(rows) == {"gan_a", "gan_b"} and all(r["status"] == "ok" for r in rows.values())
    # gan_a is on both sides: its own reals and fakes are split; gan_b (unseen) is tested on all it has
    a, b = rows["gan_a"]["counts"], rows["gan_b"]["counts"]
    assert a["train_real"] + a["test_real"] == 12 and a["train_fake"] + a["test_fake"] == 12
    assert 0 < a["test_real"] < 12 and 0 < a["test_fake"] < 12
    assert (b["test_real"], b["test_fake"]) == (12, 12)
    assert rows["gan_b"]["protocol"] == "p" and rows["gan_b"]["metrics"]["auc"] > 0.9


# -- command line ----------------------------------------------------------------------------------------
def test_run_and_leaderboard_commands(
    bench_registry: Registry, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from dfzoo.cli import main

    (tmp_path / "p.toml").write_text(
        f'name = "cli"\ndataset = "tinyzoo"\ntrain_generators = ["gan_a"]\n'
        f'bootstrap = 20\ndataset_params = {{ folder = "{tiny_data}" }}\n'
    )
    store, board = tmp_path / "store", tmp_path / "board"
    code = main(
        [
            "run",
            "--protocol",
            str(tmp_path / "p.toml"),
            "--store",
            str(store),
            "--leaderboard-dir",
            str(board),
            "--detector",
            "hf_energy",
            "--cap",
            "6",
            "--perturb",
            "none",
            "--perturb",
            "blur:sigma=1",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "hf_energy" in out and "mean AUC" in out and "6 ok" in out
    rows = ResultStore(store).rows()
    assert len(rows) == 6 and {r["test_perturbation"] for r in rows} == {"none", "blur:sigma=1"}
    assert all(r["cap_per_class"] == 6 and r["counts"]["test_fake"] <= 6 for r in rows)
    assert (board / "README.md").exists() and (board / "plots" / "cli-auc.png").exists()
    assert main(["leaderboard", "--store", str(store), "--out", str(tmp_path / "again"), "--no-plots"]) == 0
    assert "## cli" in (tmp_path / "again" / "README.md").read_text()
    assert main(["leaderboard", "--store", str(tmp_path / "missing")]) == 2  # a command error (dfzoo.cli)
    assert (
        main(
            [
                "run",
                "--protocol",
                str(tmp_path / "p.toml"),
                "--store",
                str(store),
                "--detector",
                "nope",
                "--no-leaderboard",
                "--quiet",
            ]
        )
        == 2
    )
    assert "no detector named 'nope'" in capsys.readouterr().err


def test_run_flags_override_default_protocols() -> None:
    import argparse

    from dfzoo.plugins.commands.benchmark import _run_arguments, build_protocols

    parser = argparse.ArgumentParser()
    _run_arguments(parser)
    protocols = build_protocols(
        parser.parse_args(
            [
                "--detector",
                "nn_cosine",
                "--param",
                "k=3",
                "--cap",
                "10",
                "--size",
                "64",
                "--seed",
                "4",
                "--test",
                "gan_upsample",
            ]
        )
    )
    assert [p.name for p in protocols] == ["zoo-diffusion", "zoo-families", "zoo-gan"]
    for protocol in protocols:
        assert protocol.detectors == (dfzoo.benchmark.protocol.DetectorEntry("nn_cosine", {"k": 3}),)
        assert protocol.cap_per_class == 10 and protocol.seed == 4 and protocol.preprocess.key == "resize:64"
        assert protocol.test_generators == ("gan_upsample",) and protocol.offline_only
        assert protocol.detector_params["nn_cosine"] == {"backbone": "efficientnet_lite0"}
    quick = build_protocols(parser.parse_args(["--dataset", "some/folder", "--train", "a,b", "--perturb", "none"]))
    assert quick[0].name == "cli-folder" and quick[0].train_generators == ("a", "b")
    assert quick[0].detectors[0].name == "*"


def test_weights_built_by_opening_the_dataset_count_as_offline(tiny_data: Path, tmp_path: Path) -> None:
    """Like the zoo: opening the dataset builds the weights a detector needs, so it must not be skipped."""
    marker = tmp_path / "built-weights.bin"

    class BuildsWeights:
        @dfzoo.hookimpl
        def dfzoo_datasets(self):
            def load(root=None, folder=""):
                marker.write_bytes(b"trained while building the dataset")
                return load_tiny_dataset(folder=folder)

            yield dfzoo.DatasetSpec(
                name="builds_weights", summary="tests", load=load, needs_root=False, params={"folder": ""}
            )

        @dfzoo.hookimpl
        def dfzoo_weights(self):
            yield dfzoo.WeightsSpec(
                name="built_weights",
                summary="tests",
                library="file",
                find_local=lambda: marker if marker.exists() else None,
            )

        @dfzoo.hookimpl
        def dfzoo_detectors(self):
            yield dfzoo.DetectorSpec(
                name="needs_built",
                summary="tests",
                factory=lambda backbone="": HFEnergy(),
                params={"backbone": "built_weights"},
            )

    import dfzoo.plugins.perturbations.standard as perturbations

    registry = Registry(
        get_plugin_manager(builtins=False, autoload=False, extra_plugins=(perturbations, BuildsWeights()))
    )
    protocol = tiny_protocol(
        tiny_data,
        dataset="builds_weights",
        perturbations=["none"],
        offline_only=True,
        detectors=[{"name": "needs_built"}],
    )
    summary = run_benchmark(protocol, tmp_path / "store", registry=registry, progress=False)
    assert summary.rows_ok == 3 and summary.rows_skipped == 0
