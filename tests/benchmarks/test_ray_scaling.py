"""Ray executor scaling on this machine: the same work with 1 and 2 Ray workers (a local instance each).

Run: ``nice -n 5 .venv/bin/pytest tests/benchmarks/test_ray_scaling.py --benchmark-only -p no:cacheprovider -s``.

* probe jobs: a frozen-feature probe grid (EfficientNet-Lite0 x {none, PCA} x six classifiers, clean and
  JPEG tests, bootstrap intervals) on a generated dataset, feature cache warmed first, so what scales is the
  jobs themselves (building the detector, fitting, scoring, metrics);
* chunked extraction: one cold shared backbone pass (EfficientNet-Lite0 at 224 px) split into chunks across
  the workers before the job that uses it.

Each run starts its own Ray instance (``num_cpus`` = workers; Ray gives each task one thread) and is timed
from submission to the last row, worker start-up included; 1 and 2 workers alternate (1, 2, 2, 1) and the best
of each counts. The speed-ups (1 worker / 2 workers) are printed and kept in ``extra_info`` beside a control:
how much faster two plain CPU-bound processes finish than one alone at that moment (2.0 on two idle cores). On
a machine shared with other work, read the speed-up against that control.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.registry import current_registry
from tests.synthetic import write_folder_dataset

ray = pytest.importorskip("ray")
from dfzoo.benchmark.ray_executor import RayExecutor  # noqa: E402  (needs ray)

CLASSIFIERS = ["logreg", "svm", "forest", "gboost", "knn3", "lda"]
REDUCTIONS = ["none", "pca"]


def _probe_protocol(data: Path):
    detectors = [
        {"name": "probe", "params": {"classifier": c, "reduction": r, "n_components": 16}}
        for r in REDUCTIONS
        for c in CLASSIFIERS
    ]
    return parse_protocol(
        {
            "name": "ray-probe-scaling",
            "dataset": str(data),
            "train_generators": ["gan_a"],
            "perturbations": ["none", "jpeg:quality=75"],
            "bootstrap": 200,
            "detectors": detectors,
        }
    )


def _timed(protocol, store: Path, workers: int, **options) -> tuple[float, RayExecutor]:
    """Seconds to run ``protocol`` into ``store`` on a fresh local Ray instance with ``workers`` CPUs."""
    shutil.rmtree(store, ignore_errors=True)
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(**options)
        started = time.perf_counter()
        summary = run_benchmark(protocol, store, registry=current_registry(), executor=executor, progress=False)
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert summary.rows_error == 0 and summary.rows_ok, summary.rows[:1]
    return seconds, executor


def _spin(count: int) -> float:
    started = time.perf_counter()
    total = 0
    for i in range(count):
        total += i
    return time.perf_counter() - started


def machine_parallel_efficiency(count: int = 20_000_000) -> float:
    """What two processes get done at once here, against one alone (2.0 on two idle cores): the control that
    says how much of a scaling ratio a shared machine could show at that moment."""
    alone = _spin(count)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        started = time.perf_counter()
        pool.map(_spin, [count, count])
        together = time.perf_counter() - started
    return 2 * alone / together


def _compare(run, benchmark) -> dict[str, float]:
    """Best of two runs with 1 and with 2 workers, alternated (1, 2, 2, 1), beside the machine's control."""
    control = machine_parallel_efficiency()

    def measure() -> dict[int, list[float]]:
        times: dict[int, list[float]] = {1: [], 2: []}
        for workers in (1, 2, 2, 1):
            times[workers].append(run(workers))
        return times

    times = benchmark.pedantic(measure, rounds=1, iterations=1)
    one, two = min(times[1]), min(times[2])
    result = {"one_worker_s": one, "two_workers_s": two, "speedup": one / two, "machine_parallel_efficiency": control}
    benchmark.extra_info.update(result)
    return result


def test_probe_jobs_with_one_and_two_workers(benchmark, tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=100)
    protocol = _probe_protocol(data)
    run_benchmark(protocol, tmp_path / "warm", progress=False)  # features into the cache, imports done
    result = _compare(lambda workers: _timed(protocol, tmp_path / f"store-{workers}", workers)[0], benchmark)
    jobs = len(REDUCTIONS) * len(CLASSIFIERS)
    benchmark.extra_info["jobs"] = jobs
    print(
        f"\n{jobs} probe jobs: 1 worker {result['one_worker_s']:.1f} s, 2 workers {result['two_workers_s']:.1f} s, "
        f"speed-up {result['speedup']:.2f}x (two plain processes here: {result['machine_parallel_efficiency']:.2f}x)"
    )


def test_chunked_feature_extraction_with_one_and_two_workers(benchmark, tmp_path, monkeypatch):
    data = write_folder_dataset(tmp_path / "data", per_class=120, size=64)
    protocol = parse_protocol(
        {
            "name": "ray-chunk-scaling",
            "dataset": str(data),
            "train_generators": ["gan_a"],
            "bootstrap": 0,
            "detectors": [{"name": "nn_cosine", "params": {"backbone": "efficientnet_lite0"}}],
        }
    )
    stats: Counter[str] = Counter()

    def run(workers: int) -> float:
        cache = tmp_path / f"cache-{workers}"
        shutil.rmtree(cache, ignore_errors=True)
        monkeypatch.setenv("DFZOO_CACHE_DIR", str(cache))  # cold every time; travels to the workers
        seconds, executor = _timed(protocol, tmp_path / f"store-{workers}", workers, chunk_images=40)
        assert executor.stats["shared_passes"] == 1
        stats.update(executor.stats)
        return seconds

    result = _compare(run, benchmark)
    images, chunks = stats["images"] // 4, stats["chunks"] // 4
    benchmark.extra_info.update(images=images, chunks=chunks)
    print(
        f"\nchunked extraction of {images} views in {chunks} chunks: 1 worker {result['one_worker_s']:.1f} s, "
        f"2 workers {result['two_workers_s']:.1f} s, speed-up {result['speedup']:.2f}x "
        f"(two plain processes here: {result['machine_parallel_efficiency']:.2f}x)"
    )
