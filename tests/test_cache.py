"""The cached-computation engine (dfzoo.cache): one engine for features and reconstructions, a cache that
holds up under concurrent writers, and the batching it decodes with (threads or DataLoader processes)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfzoo.batching import DecodePlan, iter_batches
from dfzoo.cache import FeatureCache, compute_cached
from dfzoo.data.decode import ImageDecodeError
from dfzoo.data.sample import Sample
from dfzoo.testing import smooth_image


def _images(folder: Path, sizes: list[int], seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, size in enumerate(sizes):
        path = folder / f"{i:03d}.png"
        Image.fromarray(smooth_image(rng, size)).save(path)
        samples.append(Sample(path=path, label=i % 2))
    return samples


def _prepare(sample: Sample) -> np.ndarray:
    return np.asarray(sample.load(), dtype=np.float32).transpose(2, 0, 1) / 255.0


def _mean_rgb(batch: np.ndarray) -> np.ndarray:
    return batch.mean(axis=(2, 3))


def _write_rows(path: str, worker: int, count: int) -> None:
    cache = FeatureCache("shared-key", root=Path(path), busy_ms=50)
    for i in range(count):
        cache.put_many({f"w{worker}-{i}": np.full(4, worker * 1000 + i, dtype=np.float32)})
    cache.close()


def test_cache_takes_concurrent_writers_from_many_processes(tmp_path):
    """Four processes write into one cache file at once (busy timeout 50 ms): every row lands, none is lost."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_rows, args=(str(tmp_path), w, 40)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    cache = FeatureCache("shared-key", root=tmp_path)
    assert len(cache) == 160
    found = cache.get_many([f"w3-{i}" for i in range(40)])
    assert all(found[f"w3-{i}"][0] == 3000 + i for i in range(40))


def test_a_locked_database_is_waited_out_not_an_error(tmp_path):
    """Another connection holds the write lock longer than the busy timeout: the write retries and lands."""
    cache = FeatureCache("k", root=tmp_path, busy_ms=20)
    holder = sqlite3.connect(cache.path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(0.4, holder.commit)
    released.start()
    started = time.monotonic()
    cache.put_many({"a": np.ones(3, dtype=np.float32)})
    assert time.monotonic() - started >= 0.3  # it did wait for the other writer
    assert cache.get_many(["a"])["a"].tolist() == [1.0, 1.0, 1.0]
    released.join()
    holder.close()


def test_patience_runs_out_with_sqlite_s_own_error(tmp_path):
    cache = FeatureCache("k", root=tmp_path, busy_ms=10, patience=0.2)
    holder = sqlite3.connect(cache.path)
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        cache.put_many({"a": np.ones(3, dtype=np.float32)})
    holder.rollback()
    holder.close()


def test_engine_groups_native_sizes_caches_and_reports_undecodable(tmp_path):
    samples = _images(tmp_path / "img", [16, 24, 16, 24, 16])
    (tmp_path / "img" / "bad.png").write_bytes(b"not an image")
    samples.append(Sample(path=tmp_path / "img" / "bad.png", label=0))
    shapes = []

    def compute(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return _mean_rgb(batch)

    cold = compute_cached(samples, key="mean", dim=3, prepare=_prepare, compute=compute, batch_size=2)
    assert all(len({s[2] for s in [shape]}) == 1 for shape in shapes) and {s[2] for s in shapes} == {16, 24}
    assert sum(s[0] for s in shapes) == 5 and list(cold.errors) == [5] and cold.cached == 0
    expected = np.stack([_prepare(s).mean(axis=(1, 2)) for s in samples[:5]])
    np.testing.assert_allclose(cold.vectors[:5], expected, rtol=1e-6)
    assert np.isnan(cold.vectors[5]).all()
    warm = compute_cached(samples, key="mean", dim=3, prepare=_prepare, compute=compute, batch_size=2)
    assert warm.cached == 5 and sum(s[0] for s in shapes) == 5  # nothing computed again
    np.testing.assert_array_equal(warm.vectors[:5], cold.vectors[:5])


def test_uint8_rows_come_back_bit_identical_under_their_own_key(tmp_path):
    samples = _images(tmp_path / "img", [8, 8, 8])

    def raw(batch: np.ndarray) -> np.ndarray:
        return np.round(batch * 255).reshape(len(batch), -1)

    first = compute_cached(samples, key="raw", dim=192, dtype=np.uint8, prepare=_prepare, compute=raw, batch_size=2)
    again = compute_cached(samples, key="raw", dim=192, dtype=np.uint8, prepare=_prepare, compute=raw, batch_size=2)
    assert first.vectors.dtype == np.uint8 and again.cached == 3
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert compute_cached(samples, key="raw", dim=192, prepare=_prepare, compute=raw, batch_size=2).cached == 0


def test_a_wrong_row_shape_is_one_clear_error(tmp_path):
    samples = _images(tmp_path / "img", [8, 8])
    with pytest.raises(ValueError, match=r"returned \(2, 3\), expected \(2, 4\)"):
        compute_cached(samples, key="k", dim=4, prepare=_prepare, compute=_mean_rgb, batch_size=2, cache=False)


def test_decoding_in_worker_processes_gives_the_same_batches_as_threads(tmp_path):
    """The GPU path (DataLoader worker processes) runs on the CPU too and yields the same rows."""
    samples = _images(tmp_path / "img", [16] * 7 + [24] * 3)

    def collect(plan: DecodePlan) -> dict[int, np.ndarray]:
        rows = {}
        for batch in iter_batches(samples, _prepare, 4, plan=plan):
            assert len({a.shape for a in batch.array}) == 1
            rows.update(zip(batch.indices, batch.array, strict=True))
        return rows

    threads = collect(DecodePlan(workers=2))
    processes = collect(DecodePlan(workers=2, processes=True))
    inline = collect(DecodePlan(workers=0))
    assert sorted(threads) == sorted(processes) == sorted(inline) == list(range(10))
    for position in threads:
        np.testing.assert_array_equal(threads[position], processes[position])
        np.testing.assert_array_equal(threads[position], inline[position])


def test_errors_reach_the_consumer_even_without_rows(tmp_path):
    def failing(sample: Sample) -> np.ndarray:
        raise ImageDecodeError(str(sample.path), "broken on purpose")

    batches = list(iter_batches(_images(tmp_path / "img", [8, 8, 8]), failing, 2))
    assert sum(len(b.indices) for b in batches) == 0
    assert {p: r for b in batches for p, r in b.errors.items()} == dict.fromkeys(range(3), "broken on purpose")


def test_decode_plan_moves_decoding_into_processes_beside_a_gpu(monkeypatch):
    monkeypatch.delenv("DFZOO_DECODE_WORKERS", raising=False)
    assert DecodePlan.for_device("cpu") == DecodePlan(workers=2, processes=False, pin_memory=False)
    gpu = DecodePlan.for_device("cuda:0")
    assert gpu.processes and gpu.pin_memory and gpu.workers >= 1
    monkeypatch.setenv("DFZOO_DECODE_WORKERS", "6")
    assert DecodePlan.for_device("cuda") == DecodePlan(workers=6, processes=True, pin_memory=True)
    monkeypatch.setenv("DFZOO_DECODE_WORKERS", "0")
    assert DecodePlan.for_device("cuda") == DecodePlan(workers=0, processes=False, pin_memory=True)
    monkeypatch.setenv("DFZOO_DECODE_WORKERS", "many")
    with pytest.raises(ValueError, match="DFZOO_DECODE_WORKERS must be a count"):
        DecodePlan.for_device("cuda")


def test_the_journal_can_suit_a_network_filesystem(tmp_path, monkeypatch):
    def mode(cache: FeatureCache) -> str:
        return sqlite3.connect(cache.path).execute("PRAGMA journal_mode").fetchone()[0]

    assert mode(FeatureCache("wal", root=tmp_path)) == "wal"
    monkeypatch.setenv("DFZOO_CACHE_JOURNAL", "delete")
    cache = FeatureCache("rollback", root=tmp_path)
    cache.put_many({"a": np.ones(2, dtype=np.float32)})
    assert mode(cache) == "delete" and len(cache) == 1
    monkeypatch.setenv("DFZOO_CACHE_JOURNAL", "memory")
    with pytest.raises(ValueError, match="DFZOO_CACHE_JOURNAL must be one of wal, delete, truncate"):
        FeatureCache("k", root=tmp_path)
