"""Two drivers on one store never duplicate work: jobs are claimed (OS file locks) before they run, rows
stay exactly once, appends never interleave, and a dead driver's claims are free again."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

import dfzoo
from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.benchmark.store import OK, ResultStore
from dfzoo.data.sample import Sample
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry
from dfzoo.testing import write_folder_dataset
from tests.kit import SpecPlugin


class SlowSpread(dfzoo.Detector):
    """Pixel spread, slowly (tests).

    Counts its fits per offset. The first fit of each driver thread waits for the other driver's first fit
    (a barrier), so both drivers are known to be running jobs at once."""

    fits: ClassVar[Counter] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()
    barrier: ClassVar[threading.Barrier] = threading.Barrier(2)
    met: ClassVar[set[int]] = set()

    def fit(self, train: Sequence[Sample]) -> SlowSpread:
        with SlowSpread.lock:
            SlowSpread.fits[self.params["offset"]] += 1
            first = threading.get_ident() not in SlowSpread.met
            SlowSpread.met.add(threading.get_ident())
        if first:
            SlowSpread.barrier.wait(timeout=120)
        threading.Event().wait(0.2)
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.array([float(np.asarray(s.load()).std()) + self.params["offset"] for s in samples])


SLOW = SpecPlugin(
    detectors=[dfzoo.DetectorSpec(name="slow_spread", factory=SlowSpread, params={"offset": 0.0}, weight_params=())]
)


def test_claims_are_exclusive_and_released(tmp_path):
    first, second = ResultStore(tmp_path), ResultStore(tmp_path)
    assert first.claim("job-a") and first.claim("job-a")  # held: claiming again is fine
    assert not second.claim("job-a")
    assert second.claim("job-b")
    first.release("job-a")
    assert second.claim("job-a")
    second.release_all()
    assert first.claim("job-a") and first.claim("job-b")


def _claim_and_exit(root: str) -> None:
    assert ResultStore(root).claim("job-a")  # the process ends without releasing


def test_a_dead_driver_leaves_no_claim_behind(tmp_path):
    process = multiprocessing.get_context("fork").Process(target=_claim_and_exit, args=(str(tmp_path),))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert ResultStore(tmp_path).claim("job-a")


def test_two_drivers_on_one_store_split_the_work_and_store_each_row_once(tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=4)
    protocol = parse_protocol(
        {
            "name": "claims",
            "dataset": str(data),
            "train_generators": ["gan_a"],
            "bootstrap": 0,
            "detectors": [{"name": "slow_spread", "params": {"offset": float(i)}} for i in range(6)],
        }
    )
    SlowSpread.fits.clear()
    SlowSpread.met.clear()
    SlowSpread.barrier.reset()
    summaries = []

    def driver() -> None:
        registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(SLOW,)))
        summaries.append(run_benchmark(protocol, tmp_path / "store", registry=registry, progress=False))

    threads = [threading.Thread(target=driver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    rows = ResultStore(tmp_path / "store").rows()
    counts = Counter(row["key"] for row in rows)
    assert len(counts) == 6 * 2 and set(counts.values()) == {1}  # 6 jobs x 2 test generators, each once
    assert all(row["status"] == OK for row in rows)
    assert sorted(SlowSpread.fits.values()) == [1] * 6  # every job fitted by exactly one driver
    assert sum(s.jobs_run for s in summaries) == 6
    assert all(s.jobs_run for s in summaries)  # both drivers did part of the work, at the same time
    skipped = [note for s in summaries for note in s.notes if "another driver" in note]
    assert len(skipped) == sum(s.jobs_planned - s.jobs_complete - s.jobs_run for s in summaries)


def _append_rows(root: str, worker: int) -> None:
    store = ResultStore(root)
    for i in range(50):
        store.append({"key": f"{worker}-{i}", "status": OK, "padding": "x" * 20_000})


def test_appends_of_two_processes_never_interleave(tmp_path):
    """Rows larger than any write buffer, appended by two processes at once: every line parses."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_rows, args=(str(tmp_path), w)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    lines = (tmp_path / "results.jsonl").read_bytes().splitlines()
    assert len(lines) == 100 and len(ResultStore(tmp_path).rows()) == 100


def test_model_dirs_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ResultStore(Path("runs")).model_dir("j") == tmp_path / "runs" / "models" / "j"
