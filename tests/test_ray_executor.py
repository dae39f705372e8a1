"""The Ray executor on a local two-CPU Ray instance: the same rows as the local executor, a killed worker
retried with every row stored exactly once, shared backbone passes split into chunks, resources fitted to
the cluster, and the device checked against the cluster."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import dfzoo
from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.benchmark.store import OK, ResultStore
from dfzoo.data.sample import Sample
from dfzoo.device import DeviceError
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry
from dfzoo.spec import Resources
from dfzoo.testing import write_folder_dataset
from tests.kit import SpecPlugin, TinyBackbonePlugin

ray = pytest.importorskip("ray")
from dfzoo.benchmark.ray_executor import RayExecutor  # noqa: E402  (needs ray)

ROOT = Path(__file__).resolve().parents[1]


class Brightness(dfzoo.Detector):
    """Pixel spread (tests).

    Scores against the midpoint learnt in fit. ``kill_marker``: the first score() call while that file does not
    exist creates it and kills its own process (a crashed worker); ``kill_always``: every one."""

    def fit(self, train: Sequence[Sample]) -> Brightness:
        time.sleep(float(self.params["sleep"]))
        values = np.array([self._value(s) for s in train])
        labels = np.array([s.label for s in train])
        self.mid = float((values[labels == 0].mean() + values[labels == 1].mean()) / 2)
        self.fitted = True
        return self

    def _value(self, sample: Sample) -> float:
        return float(np.asarray(sample.load(), dtype=np.float64).std()) + float(self.params["offset"])

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        marker = self.params["kill_marker"]
        if self.params["kill_always"] or (marker and not Path(marker).exists()):
            if marker:
                Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), 9)
        return np.array([self._value(s) - self.mid for s in samples])

    def _save_state(self, folder: Path) -> None:
        (folder / "mid.txt").write_text(repr(self.mid))

    def _load_state(self, folder: Path) -> None:
        self.mid = float((folder / "mid.txt").read_text())


# The cheap detector above and the tests' tiny random backbone, registered in the driver and in every worker.
PLUGINS = (
    SpecPlugin(
        detectors=[
            dfzoo.DetectorSpec(
                name="brightness",
                factory=Brightness,
                params={"offset": 0.0, "kill_marker": "", "kill_always": False, "sleep": 0.0},
                weight_params=(),
                resources=Resources(cpus=1, gpus=1),  # wants a GPU: never asked of this CPU-only cluster
            )
        ]
    ),
    TinyBackbonePlugin(),
)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with two CPUs for this module; workers can import the tests package."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_registry():
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=PLUGINS))
    with use_registry(registry):
        yield registry


def _protocol(data: Path, detectors: list[dict], name: str = "ray-test"):
    return parse_protocol(
        {
            "name": name,
            "dataset": str(data),
            "train_generators": ["gan_a"],
            "test_generators": "all",
            "perturbations": ["none", "jpeg:quality=50"],
            "bootstrap": 20,
            "detectors": detectors,
        }
    )


def _by_key(store: Path) -> dict[str, dict]:
    rows = ResultStore(store).rows()
    counts = Counter(row["key"] for row in rows)
    assert all(count == 1 for count in counts.values()), f"duplicate rows: {counts.most_common(3)}"
    return {row["key"]: row for row in rows}


def test_ray_and_local_executors_give_the_same_rows(ray_cluster, ray_registry, tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=8)
    frozen = {"backbone": "tiny_cnn", "pretrained": False}
    first = _protocol(
        data,
        [
            {"name": "brightness"},
            {"name": "brightness", "params": {"offset": 1.5}},
            {"name": "nn_cosine", "params": frozen},
            {"name": "clip_probe", "params": frozen},
        ],
    )
    second = first.replace(name="ray-test-b", train_generators=("gan_b",), detectors=first.detectors[2:3])
    local = run_benchmark([first, second], tmp_path / "local", registry=ray_registry, progress=False)
    executor = RayExecutor(plugins=PLUGINS, chunk_images=10)
    remote = run_benchmark([first, second], tmp_path / "ray", registry=ray_registry, executor=executor, progress=False)
    assert local.jobs_run == remote.jobs_run == 5
    local_rows, ray_rows = _by_key(tmp_path / "local"), _by_key(tmp_path / "ray")
    assert sorted(local_rows) == sorted(ray_rows) and len(ray_rows) == len(local.rows) >= 5 * 2
    for key, row in local_rows.items():
        assert row["status"] == ray_rows[key]["status"] == OK, ray_rows[key].get("error")
        assert row["metrics"] == ray_rows[key]["metrics"], key
        assert ray_rows[key]["hardware"] == {"device": "cpu", "gpu": "", "precision": "float32"}
    # the three frozen-feature jobs share one backbone pass over the views of both protocols (each view once),
    # split into chunks of 10 across the workers
    first_views, second_views = _views(first, ray_registry), _views(second, ray_registry)
    assert executor.stats["shared_passes"] == 1 and executor.stats["jobs_after_pass"] == 3
    assert executor.stats["images"] == len(first_views | second_views) > len(first_views)
    assert executor.stats["chunks"] == -(-executor.stats["images"] // 10)


def _views(protocol, registry) -> set[tuple[str, str]]:
    """Every (image, view) a frozen-feature job of ``protocol`` is handed."""
    from dfzoo.benchmark.executor import Job, RowTask
    from dfzoo.benchmark.protocol_datasets import open_protocol_dataset
    from dfzoo.benchmark.runner import job_samples
    from dfzoo.benchmark.splits import split_dataset

    split = split_dataset(protocol, open_protocol_dataset(protocol, registry))
    tasks = tuple(RowTask("k", g, p) for p in protocol.perturbations for g in split.test_generators)
    job = Job("j", protocol, "nn_cosine", {}, "nn", "h", "s", "f", tasks, "")
    return {(view.display_name, view.view_key) for view in job_samples(job, split, registry)}


def test_a_killed_worker_is_retried_and_every_row_stored_once(ray_cluster, ray_registry, tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=6)
    marker = tmp_path / "killed-once"
    protocol = _protocol(data, [{"name": "brightness", "params": {"kill_marker": str(marker)}}])
    summary = run_benchmark(
        protocol, tmp_path / "store", registry=ray_registry, executor=RayExecutor(plugins=PLUGINS), progress=False
    )
    assert marker.exists()  # a worker did die mid-job
    rows = _by_key(tmp_path / "store")
    assert len(rows) == 4 and all(row["status"] == OK for row in rows.values())
    assert summary.rows_ok == 4 and summary.jobs_run == 1


def test_a_job_whose_retries_run_out_gets_error_rows_for_what_is_missing(ray_cluster, ray_registry, tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=6)
    protocol = _protocol(data, [{"name": "brightness", "params": {"kill_always": True}}])
    executor = RayExecutor(plugins=PLUGINS, max_retries=0)
    summary = run_benchmark(protocol, tmp_path / "store", registry=ray_registry, executor=executor, progress=False)
    rows = _by_key(tmp_path / "store")
    assert len(rows) == 4 and all(row["status"] == "error" for row in rows.values())
    assert all(row["error"]["stage"] == "worker" for row in rows.values())
    assert summary.rows_error == 4


def test_resources_fit_the_cluster(ray_cluster, ray_registry, tmp_path):
    executor = RayExecutor()
    protocol = _protocol(tmp_path, [{"name": "brightness"}])
    from dfzoo.benchmark.executor import Job

    job = Job("j", protocol, "brightness", {}, "b", "h", "s", "f", (), str(tmp_path))
    cpu_only = {"CPU": 2.0}
    assert executor.request(job, cpu_only)["num_gpus"] == 0.0  # wants a GPU, but none exists
    assert executor.request(job, {"CPU": 8.0, "GPU": 2.0})["num_gpus"] == 1.0
    probe = Job("j", protocol, "nn_cosine", {}, "b", "h", "s", "f", (), str(tmp_path), device="cuda")
    assert executor.request(probe, {"CPU": 8.0, "GPU": 2.0})["num_gpus"] == 0.25  # told to run on CUDA: a share
    assert (
        executor.request(Job("j", protocol, "nn_cosine", {}, "b", "h", "s", "f", (), ""), {"CPU": 8.0, "GPU": 2.0})[
            "num_gpus"
        ]
        == 0.0
    )  # a probe wants no GPU


def test_device_is_checked_against_the_cluster(ray_cluster):
    executor = RayExecutor()
    executor.check_device(None)
    executor.check_device("cpu")
    with pytest.raises(DeviceError, match="the Ray cluster has no GPU"):
        executor.check_device("cuda")
    with pytest.raises(DeviceError, match="use --device cuda"):
        executor.check_device("cuda:3")
    with pytest.raises(DeviceError, match="unknown device"):
        executor.check_device("tpu")


def test_shared_pass_fills_the_cache_the_job_then_reads(ray_registry, tmp_path):
    """What a chunk task does, in-process: precompute() on views, then fit() finds every feature cached."""
    from dfzoo.benchmark.executor import Job, RowTask
    from dfzoo.benchmark.protocol_datasets import open_protocol_dataset
    from dfzoo.benchmark.runner import job_samples, run_context
    from dfzoo.benchmark.splits import split_dataset

    data = write_folder_dataset(tmp_path / "data", per_class=4)
    protocol = _protocol(data, [{"name": "nn_cosine"}])
    task = RowTask("k", "gan_b", "jpeg:quality=50")
    params = {"backbone": "tiny_cnn", "pretrained": False}
    job = Job("j", protocol, "nn_cosine", params, "nn", "h", "s", "f", (task,), str(tmp_path / "m"))
    split = split_dataset(protocol, open_protocol_dataset(protocol, ray_registry))
    samples = job_samples(job, split, ray_registry)
    assert len(samples) == len(split.train) + len(split.tests["gan_b"])
    first = dfzoo.load_detector("nn_cosine", **params).setup(run_context(job).with_(progress=False))
    assert first.shared_work() is not None
    first.precompute(samples)
    second = dfzoo.load_detector("nn_cosine", **params).setup(run_context(job).with_(progress=False))
    assert second.features(samples, training=True).cached == len(samples)


def test_the_command_line_names_the_executor():
    from dfzoo.benchmark.executor import make_executor

    assert make_executor("local") is None  # the harness's own, sharing its dataset cache
    executor = make_executor("ray", address="auto", workers=None)
    assert isinstance(executor, RayExecutor) and executor.address == "auto"
    with pytest.raises(ValueError, match="apply to --executor ray"):
        make_executor("local", workers=2)
    with pytest.raises(ValueError, match="at least 1"):
        make_executor("ray", workers=0)
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask")
