"""Jobs on a Ray cluster (``dfzoo run --executor ray``): every job a Ray task, rows streamed back to the driver.

The driver (this process) stays the single writer of the store: each job runs as a Ray streaming-generator
task that calls :func:`dfzoo.benchmark.runner.run_job` on a worker and yields its events, which the harness
appends as they arrive. A task asks for the resources its detector declares
(:meth:`dfzoo.spec.DetectorSpec.resources_for`); a GPU only where the cluster has one, or for every job when
``--device cuda`` is asked for (a quarter of one for jobs that declare none, such as probes: features
computed on a GPU are cached under a different key than CPU ones, so a probe's shared pass and the probe
itself run on the same kind of device). A worker that dies mid-job (killed, out of memory) is retried by Ray
(``max_retries``); the retry runs the whole job again and the driver drops every row whose key it has seen
already, so each row is stored exactly once. A job whose retries run out gets error rows for what is missing.

Below the job, per-image work that jobs share (:meth:`dfzoo.detector.Detector.shared_work`, e.g. one
backbone pass serving every probe on that backbone) is split into chunks embedded by parallel tasks into the
shared cache (:meth:`dfzoo.detector.Detector.precompute`) before those jobs start, so N workers embed a dataset
N times faster, not only run N jobs at once.

Without an address a local Ray instance is started (``workers`` CPUs, default all); with one (or
``$RAY_ADDRESS``) the driver joins that cluster. Workers need dfzoo and the plugins installed, and the
folders jobs use (the store's ``models/``, ``$DFZOO_CACHE_DIR``, datasets) at the same paths: a shared
filesystem. The driver's ``DFZOO_*`` settings travel with every task.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .executor import Executor, Job, JobEvent
from .rows import base_row, error_record, task_row
from .store import ERROR

log = logging.getLogger(__name__)
FORWARDED_ENV = ("DFZOO_", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # settings a worker takes from the driver
TASKS_PER_CPU = 2  # jobs kept submitted per cluster CPU (the rest wait, unclaimed, for another driver to share)
CHUNKS_PER_WORKER = 2  # a shared pass is split into this many chunks per worker (balances uneven chunks)
MIN_CHUNK_IMAGES = 64  # ...but no chunk smaller than this (each chunk task builds its model once)
DEFAULT_MAX_RETRIES = 3
SHARED_GPU = 0.25  # with --device cuda, a job whose detector wants no GPU of its own shares one with three others

_WORKER_DATASETS: dict[Any, Any] = {}  # a worker process's dataset cache, across the jobs it runs
_WORKER_DETECTORS: dict[str, Any] = {}  # a worker's last pre-pass detector (its model stays loaded across chunks)


# -- on the workers --------------------------------------------------------------------------------------
def _worker_setup(env: dict[str, str], plugins: tuple[object, ...]) -> Any:
    """Mirror the driver's dfzoo settings in this (reused) worker process; a registry with ``plugins``."""
    for key in [k for k in os.environ if k.startswith(FORWARDED_ENV) and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    from dfzoo.manager import get_plugin_manager
    from dfzoo.registry import Registry

    return Registry(get_plugin_manager(extra_plugins=plugins))


def _run_remote(job: Job, env: dict[str, str], plugins: tuple[object, ...]) -> Iterator[JobEvent]:
    """A Ray task: run one job here and yield its events."""
    from dfzoo.registry import use_registry

    from .runner import run_job

    with use_registry(_worker_setup(env, plugins)):
        yield from run_job(job, datasets=_WORKER_DATASETS)


def _precompute_remote(job: Job, samples: list[Any], env: dict[str, str], plugins: tuple[object, ...]) -> int:
    """A Ray task: the job's detector fills the shared cache for one chunk of views; returns the count."""
    import dfzoo
    from dfzoo.registry import use_registry

    from .runner import run_context

    registry = _worker_setup(env, plugins)
    key = json.dumps([job.detector, job.params, job.device, job.protocol.preprocess.key], sort_keys=True, default=str)
    with use_registry(registry):
        detector = _WORKER_DETECTORS.get(key)
        if detector is None:
            _WORKER_DETECTORS.clear()
            detector = dfzoo.load_detector(job.detector, registry=registry, **job.params)
            detector.setup(run_context(job).with_(progress=False))
            _WORKER_DETECTORS[key] = detector
        detector.precompute(samples)
    return len(samples)


# -- on the driver ---------------------------------------------------------------------------------------
@dataclass
class _Running:
    job: Job
    seen: set[str] = field(default_factory=set)  # row keys already passed on (a retry sends them again)
    started: bool = False


@dataclass
class _SharedPass:
    chunks: list[Any]  # object refs of the chunk tasks still running
    jobs: list[Job]  # claimed jobs waiting for the pass


class RayExecutor(Executor):
    """Runs jobs as Ray tasks (see the module docstring).

    ``address``: a cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None starts a local
    instance with ``workers`` CPUs (default: all). ``plugins`` are plugin objects registered in every worker
    besides the installed ones (tests and notebooks). ``prepass`` turns the chunked shared passes on;
    ``chunk_images`` fixes their chunk size (default: about :data:`CHUNKS_PER_WORKER` chunks per CPU).
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        plugins: Sequence[object] = (),
        max_retries: int = DEFAULT_MAX_RETRIES,
        prepass: bool = True,
        chunk_images: int | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.address = address
        self.workers = workers
        self.plugins = tuple(plugins)
        self.max_retries = max_retries
        self.prepass = prepass
        self.chunk_images = chunk_images
        self.datasets: dict[Any, Any] = {}
        self.stats: Counter[str] = Counter()  # shared_passes, chunks, images (views embedded), jobs_after_pass
        self._queue: deque[Job] = deque()
        self._started_ray = False

    # -- cluster ---------------------------------------------------------------------------------------
    def connect(self) -> Any:
        """The ``ray`` module, joined to the cluster (or a local instance started) on first use."""
        try:
            import ray
        except ImportError:
            raise RuntimeError("the Ray executor needs Ray: pip install 'dfzoo[ray]'") from None
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS") or None
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
                self._started_ray = True
        return ray

    def cluster(self) -> dict[str, float]:
        """The cluster's total resources (``CPU``, ``GPU``, ``memory``...)."""
        return dict(self.connect().cluster_resources())

    def check_device(self, device: str | None) -> None:
        """``device`` checked against the cluster, not this machine: CUDA needs GPUs in the cluster, and Ray
        gives each task its own GPU (so ``cuda:N`` has no meaning here)."""
        from dfzoo.device import DEVICE_PATTERN, KNOWN, DeviceError, pick_device

        text = (device or "auto").strip().lower()
        if text == "auto" or text == "cpu":
            return
        if not DEVICE_PATTERN.match(text):
            raise DeviceError(f"unknown device {text!r}; use {KNOWN}")
        if text.startswith("cuda"):
            if text != "cuda" and text != "cuda:0":
                raise DeviceError(f"device {text!r}: Ray gives each task its GPU; use --device cuda")
            if not self.cluster().get("GPU", 0):
                raise DeviceError(f"device {text!r} asked for, but the Ray cluster has no GPU")
            return
        pick_device(text)  # mps: only a single-machine cluster can have it

    def request(self, job: Job, cluster: dict[str, float]) -> dict[str, Any]:
        """The Ray resource options of one job's tasks (what its detector declares, fitted to the cluster)."""
        from dfzoo.registry import current_registry

        wanted = current_registry().detector(job.detector).resources_for(job.params)
        device = (job.device or "auto").lower()
        gpus = 0.0
        if device.startswith("cuda"):
            gpus = wanted.gpus or SHARED_GPU  # told to run on CUDA, it must see a GPU (a share if it wants none)
        elif device == "auto" and cluster.get("GPU", 0):
            gpus = min(wanted.gpus, cluster["GPU"])
        options: dict[str, Any] = {"num_cpus": min(wanted.cpus, cluster.get("CPU", wanted.cpus)), "num_gpus": gpus}
        options |= {"max_retries": self.max_retries, "retry_exceptions": False}
        if wanted.memory_gb:
            options["memory"] = int(wanted.memory_gb * 2**30)
        return options

    # -- jobs ------------------------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def results(self) -> Iterator[JobEvent]:
        from dfzoo.registry import current_registry

        ray = self.connect()
        registry = current_registry()
        cluster = self.cluster()
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        window = max(1, int(cluster.get("CPU", 1) * TASKS_PER_CPU))
        run_task, chunk_task = ray.remote(_run_remote), ray.remote(_precompute_remote)
        running: dict[Any, _Running] = {}  # generator -> state
        passes: dict[str, _SharedPass] = {}  # shared-work key -> its pass while running
        done_passes: set[str] = set()

        keys: dict[str, str | None] = {}  # job id -> shared-work key

        def shared_work(job: Job) -> str | None:
            if job.job_id not in keys:
                keys[job.job_id] = self._shared_work(job, registry) if self.prepass else None
            return keys[job.job_id]

        def start(job: Job) -> None:
            generator = run_task.options(**self.request(job, cluster)).remote(job, env, self.plugins)
            running[generator] = _Running(job)

        try:
            while self._queue or running or passes:
                waiting = sum(len(p.jobs) for p in passes.values())
                while self._queue and len(running) + waiting < window:
                    queued = self._queue.popleft()
                    job = self.claim(queued)
                    if job is None:
                        yield self.skipped(queued)
                        continue
                    key = shared_work(job)
                    if key is None or key in done_passes:
                        start(job)
                    elif key in passes:
                        passes[key].jobs.append(job)
                        waiting += 1
                    else:  # one pass over the views of every queued job sharing the key
                        sharing = [job, *(queued for queued in self._queue if shared_work(queued) == key)]
                        chunks = self._chunk_tasks(sharing, registry, cluster, env, chunk_task)
                        if not chunks:  # nothing to split (or the data would not open): the job goes alone
                            done_passes.add(key)
                            start(job)
                            continue
                        passes[key] = _SharedPass(chunks, [job])
                        waiting += 1
                refs = list(running) + [ref for p in passes.values() for ref in p.chunks]
                if not refs:
                    continue
                ready, _ = ray.wait(refs, num_returns=1)
                for ref in ready:
                    if ref in running:
                        yield from self._advance(ray, ref, running)
                        continue
                    key = next(k for k, p in passes.items() if ref in p.chunks)
                    shared = passes[key]
                    shared.chunks.remove(ref)
                    try:
                        ray.get(ref)
                    except Exception as error:  # the jobs compute what the pass did not
                        log.warning("shared pass chunk failed (%s); its jobs compute it themselves", error)
                    if not shared.chunks:
                        del passes[key]
                        done_passes.add(key)
                        self.stats["jobs_after_pass"] += len(shared.jobs)
                        for job in shared.jobs:
                            start(job)
        finally:  # interrupted (or done): stop what still runs
            for ref in [*running, *(r for p in passes.values() for r in p.chunks)]:
                ray.cancel(ref, force=True)

    def _advance(self, ray: Any, generator: Any, running: dict[Any, _Running]) -> Iterator[JobEvent]:
        """Pass on the next event of one job's task (deduplicated); on its end, release the job's claim."""
        state = running[generator]
        try:
            event = ray.get(next(generator))
        except StopIteration:
            event = JobEvent("finished", state.job.job_id)
        except Exception as error:  # retries ran out (or the task itself failed): the missing rows are errors
            yield from self._failed(state, error)
            event = JobEvent("finished", state.job.job_id)
        if event.kind == "started":
            if state.started:
                return  # a retry starting over
            state.started = True
        elif event.kind == "row" and event.row is not None:
            if event.row["key"] in state.seen:
                return  # sent already by an attempt that died
            state.seen.add(event.row["key"])
        elif event.kind == "finished":
            del running[generator]
        yield event
        if event.kind == "finished":
            self.release(state.job)

    def _failed(self, state: _Running, error: BaseException) -> Iterator[JobEvent]:
        log.warning("%s: the job's task failed (%s); missing rows are recorded as errors", state.job.label, error)
        base = base_row(state.job, None, None)
        for task in state.job.tasks:
            if task.key not in state.seen:
                state.seen.add(task.key)
                row = task_row(base, task, None, ERROR, error=error_record(error, "worker"))
                yield JobEvent("row", state.job.job_id, row=row)

    # -- shared passes ---------------------------------------------------------------------------------
    def _shared_work(self, job: Job, registry: Any) -> str | None:
        """The job's shared-work key (with the device its pass runs on), or None."""
        import dfzoo

        from .runner import run_context

        try:
            detector = dfzoo.load_detector(job.detector, registry=registry, **job.params)
            detector.setup(run_context(job))
            key = detector.shared_work()
        except Exception as error:  # the job itself will report what is wrong
            log.debug("%s: no shared pass (%s)", job.label, error)
            return None
        return None if key is None else json.dumps([key, job.device])

    def _chunk_tasks(
        self, jobs: list[Job], registry: Any, cluster: dict[str, float], env: dict[str, str], chunk_task: Any
    ) -> list[Any]:
        """Launch the chunk tasks of a shared pass over every view the ``jobs`` (sharing its key) will hand
        their detectors, each view once; run by the first job's detector."""
        from .runner import job_samples, load_dataset
        from .splits import split_dataset

        views: dict[tuple[str, str], Any] = {}
        splits: dict[int, Any] = {}  # id(protocol) -> its split (jobs of one protocol share the object)
        for job in jobs:
            try:
                if id(job.protocol) not in splits:
                    dataset, _ = load_dataset(job.protocol, registry, self.datasets)
                    splits[id(job.protocol)] = split_dataset(job.protocol, dataset)
                for view in job_samples(job, splits[id(job.protocol)], registry):
                    views.setdefault((view.display_name, view.view_key), view)
            except Exception as error:  # the job will report it
                log.debug("%s: left out of the shared pass (%s)", job.label, error)
        samples = list(views.values())
        if not samples:
            return []
        job = jobs[0]
        size = self.chunk_images or max(
            MIN_CHUNK_IMAGES, math.ceil(len(samples) / max(1, int(cluster.get("CPU", 1)) * CHUNKS_PER_WORKER))
        )
        options = self.request(job, cluster)
        self.stats.update(shared_passes=1, chunks=math.ceil(len(samples) / size), images=len(samples))
        return [
            chunk_task.options(**options).remote(job, samples[i : i + size], env, self.plugins)
            for i in range(0, len(samples), size)
        ]

    def close(self) -> None:
        super().close()
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


__all__ = ["RayExecutor"]
