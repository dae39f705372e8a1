"""Harness re-run speed: a cold run (empty store) against a warm re-run of the same protocol.

Run: ``pytest tests/benchmarks/test_harness_rerun.py --benchmark-enable -p no:randomly``. The warm run must
reuse every finished job (nothing fitted or scored again); the cold/warm ratio is printed and stored in
``extra_info``. A third case resumes a store missing half its rows (the saved model is reloaded, not refitted).
"""

from __future__ import annotations

import itertools
import json

import pytest

from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.store import ResultStore
from dfzoo.registry import use_registry
from tests.kit import HFEnergy, make_registry, tiny_protocol, write_tiny_dataset

means: dict[str, float] = {}
DETECTORS = [{"name": "hf_energy"}, {"name": "hf_energy", "params": {"fail": "x"}}]  # two jobs, same method


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    registry = make_registry()
    root = tmp_path_factory.mktemp("rerun")
    data = write_tiny_dataset(root / "data", reals=60, fakes=30)
    protocol = tiny_protocol(data, detectors=DETECTORS, bootstrap=1000)
    with use_registry(registry):
        yield registry, protocol, root


def test_cold_run(benchmark, setup):
    registry, protocol, root = setup
    counter = itertools.count()

    def cold():
        return run_benchmark(protocol, root / f"cold-{next(counter)}", registry=registry, progress=False)

    summary = benchmark.pedantic(cold, rounds=3, warmup_rounds=0)
    assert summary.jobs_run == 2 and summary.rows_ok == 12
    means["cold"] = benchmark.stats.stats.mean


def test_warm_rerun(benchmark, setup):
    registry, protocol, root = setup
    store = root / "warm"
    run_benchmark(protocol, store, registry=registry, progress=False)
    fits = sum(HFEnergy.fit_calls.values())
    summary = benchmark.pedantic(
        lambda: run_benchmark(protocol, store, registry=registry, progress=False), rounds=5, warmup_rounds=1
    )
    assert summary.jobs_run == 0 and summary.jobs_complete == 2 and summary.rows == []
    assert sum(HFEnergy.fit_calls.values()) == fits  # nothing refitted
    assert len(ResultStore(store).rows()) == 12
    means["warm"] = benchmark.stats.stats.mean
    if "cold" in means:
        ratio = means["cold"] / means["warm"]
        benchmark.extra_info["cold_over_warm"] = ratio
        print(f"\ncold run {means['cold']:.3f} s, warm re-run {means['warm']:.3f} s: warm is {ratio:.0f}x faster")


def test_resume_half_missing(benchmark, setup):
    registry, protocol, root = setup
    source = root / "resume-source"
    run_benchmark(protocol, source, registry=registry, progress=False)
    lines = (source / "results.jsonl").read_text().splitlines()
    counter = itertools.count()

    def prepare():  # a store holding the first job's rows only, plus both saved models
        store = root / f"resume-{next(counter)}"
        (store / "models").mkdir(parents=True)
        kept = [line for line in lines if json.loads(line)["label"] == "hf_energy"]
        (store / "results.jsonl").write_text("\n".join(kept) + "\n")
        for model in (source / "models").iterdir():
            if model.is_dir() and not model.name.endswith(".work"):
                target = store / "models" / model.name
                target.mkdir()
                for f in model.iterdir():
                    (target / f.name).write_bytes(f.read_bytes())
        return (store,), {}

    fits = sum(HFEnergy.fit_calls.values())
    summary = benchmark.pedantic(
        lambda store: run_benchmark(protocol, store, registry=registry, progress=False),
        setup=prepare,
        rounds=3,
        warmup_rounds=0,
    )
    assert summary.jobs_run == 1 and summary.rows_ok == 6 and all(r["model_reused"] for r in summary.rows)
    assert sum(HFEnergy.fit_calls.values()) == fits
    means["resume"] = benchmark.stats.stats.mean
    if "cold" in means:
        benchmark.extra_info["cold_over_resume_half"] = means["cold"] / means["resume"]
        print(f"\nresuming half the rows (model reloaded) takes {means['resume']:.3f} s")
