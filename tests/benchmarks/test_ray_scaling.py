"""Ray executor scaling on this machine: the same work with 1 and 2 Ray workers (a local instance each).

Run: ``nice -n 5 .venv/bin/pytest tests/benchmarks/test_ray_scaling.py --benchmark-only -p no:cacheprovider -s``.

* probe jobs: a frozen-feature probe grid (EfficientNet-Lite0 x {none, PCA} x six classifiers, clean and
  JPEG tests, bootstrap intervals) on a generated dataset, feature cache warmed first, so what scales is the
  jobs themselves (building the detector, fitting, scoring, metrics);
* chunked extraction: one cold shared backbone pass (EfficientNet-Lite0 at 224 px) split into chunks across
  the workers before the job that uses it.

Each side starts its own Ray instance (``num_cpus`` = workers; Ray gives each task one thread) and is timed
from submission to the last row, worker start-up included. The speed-ups (1 worker / 2 workers) are printed
and kept in ``extra_info``; on a machine shared with other work they are lower bounds.
"""

from __future__ import annotations

import time
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


def test_probe_jobs_with_one_and_two_workers(benchmark, tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=60)
    protocol = _probe_protocol(data)
    run_benchmark(protocol, tmp_path / "warm", progress=False)  # features into the cache, imports done
    one, _ = _timed(protocol, tmp_path / "one", 1)
    two, _ = benchmark.pedantic(lambda: _timed(protocol, tmp_path / "two", 2), rounds=1, iterations=1)
    speedup = one / two
    jobs = len(REDUCTIONS) * len(CLASSIFIERS)
    benchmark.extra_info.update(jobs=jobs, one_worker_s=round(one, 1), two_workers_s=round(two, 1), speedup=speedup)
    print(f"\n{jobs} probe jobs: 1 worker {one:.1f} s, 2 workers {two:.1f} s, speed-up {speedup:.2f}x")


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
    times, stats = {}, {}
    for workers in (1, 2):
        monkeypatch.setenv("DFZOO_CACHE_DIR", str(tmp_path / f"cache-{workers}"))  # cold, travels to workers

        def run(workers: int = workers) -> tuple[float, RayExecutor]:
            return _timed(protocol, tmp_path / f"store-{workers}", workers, chunk_images=40)

        if workers == 2:
            times[workers], executor = benchmark.pedantic(run, rounds=1, iterations=1)
        else:
            times[workers], executor = run()
        stats[workers] = dict(executor.stats)
        assert stats[workers]["shared_passes"] == 1
    speedup = times[1] / times[2]
    images = stats[2]["images"]
    benchmark.extra_info.update(images=images, chunks=stats[2]["chunks"], speedup=speedup)
    print(
        f"\nchunked extraction of {images} views in {stats[2]['chunks']} chunks: 1 worker {times[1]:.1f} s, "
        f"2 workers {times[2]:.1f} s, speed-up {speedup:.2f}x"
    )
