"""Where benchmark jobs run: the :class:`Executor` interface and the in-process :class:`LocalExecutor`.

A :class:`Job` is plain, picklable data (a protocol, a detector name and parameters, ids and the row keys
still to compute), never a live model, so a distributed executor (a process pool, a cluster queue) can be
added without touching detectors: it ships jobs to workers that call :func:`dfzoo.benchmark.runner.run_job`
and streams the :class:`JobEvent` objects back. The harness alone writes the result store.

Workers find plugins through :func:`dfzoo.current_registry` (installed plugins); a job names the folder its
fitted model goes to (``model_dir``, under the store), so workers of a distributed executor need that folder
on a shared filesystem; they never open the store itself.

The harness :meth:`~Executor.bind` s an executor to its store before submitting: an executor claims each job
on the store just before it runs it (:meth:`Executor.claim`), so two drivers on one store share the work and
never run a job twice, and releases the claim once the job's rows are stored.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .protocol import Protocol
from .store import ResultStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowTask:
    """One result row a job must produce: its store key, test generator and test perturbation key."""

    key: str
    test_generator: str
    perturbation: str


@dataclass(frozen=True)
class Job:
    """One (protocol, detector) pair: fit once, then score each pending (test generator, perturbation)."""

    job_id: str
    protocol: Protocol
    detector: str
    params: dict[str, Any]
    label: str
    params_hash: str
    settings_hash: str
    dataset_fingerprint: str
    tasks: tuple[RowTask, ...]
    model_dir: str  # where the fitted detector is saved and reloaded (a shared filesystem for remote workers)
    device: str | None = None
    progress: bool = True


@dataclass
class JobEvent:
    """Something a running job reports: ``"started"``, a finished ``"row"``, or ``"finished"``; or, from the
    executor, ``"skipped"`` for a job another driver on the same store runs (``info["reason"]`` says so).

    A row event carries the row (a JSON-friendly dict) and its raw ``labels`` / ``scores`` for the sidecar,
    with ``ids`` naming each image (its file path, or a content id for in-memory images).
    """

    kind: str
    job_id: str
    row: dict[str, Any] | None = None
    labels: Any = None
    scores: Any = None
    ids: Any = None
    info: dict[str, Any] = field(default_factory=dict)


Runner = Callable[..., Iterator[JobEvent]]


class Executor(ABC):
    """Runs submitted jobs and yields their events as they happen (in any order across jobs)."""

    store: ResultStore | None = None  # set by bind(): the store whose jobs this executor claims
    datasets: dict[Any, Any]

    def bind(self, store: ResultStore, datasets: dict[Any, Any]) -> None:
        """Adopt the harness's store (jobs are claimed on it) and its dataset cache (indexed once per run)."""
        self.store = store
        if not getattr(self, "datasets", None):
            self.datasets = datasets

    def check_device(self, device: str | None) -> None:
        """Fail before any work when ``device`` is unknown or absent where jobs will run (here: this machine)."""
        from dfzoo.device import pick_device

        pick_device(device)

    def claim(self, job: Job) -> Job | None:
        """``job`` narrowed to the rows still missing, once this driver holds its claim on the store; None when
        another driver holds the claim or has stored every row meanwhile (then nothing is held)."""
        store = self.store
        if store is None:
            return job
        if not store.claim(job.job_id):
            return None
        done = store.done_keys()
        pending = tuple(task for task in job.tasks if task.key not in done)
        if not pending:
            store.release(job.job_id)
            return None
        return job if len(pending) == len(job.tasks) else replace(job, tasks=pending)

    def release(self, job: Job) -> None:
        """Give up the claim on ``job`` (its rows are stored)."""
        if self.store is not None:
            self.store.release(job.job_id)

    def skipped(self, job: Job) -> JobEvent:
        reason = "another driver on this store runs it (or has stored its rows)"
        log.info("%s: skipped, %s", job.label, reason)
        return JobEvent("skipped", job.job_id, info={"label": job.label, "reason": reason})

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Queue a job."""

    @abstractmethod
    def results(self) -> Iterator[JobEvent]:
        """Events of every submitted job until all have finished."""

    def close(self) -> None:
        """Release workers and any claim still held."""
        if self.store is not None:
            self.store.release_all()


class LocalExecutor(Executor):
    """Runs jobs one after the other in this process, lazily, as :meth:`results` is consumed.

    ``datasets`` is an optional dict used as a dataset cache across jobs (the harness shares the one it used
    for planning, so each dataset is indexed once per run).
    """

    def __init__(self, runner: Runner | None = None, datasets: dict[Any, Any] | None = None) -> None:
        self._runner = runner
        self._queue: deque[Job] = deque()
        self.datasets: dict[Any, Any] = datasets if datasets is not None else {}

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def results(self) -> Iterator[JobEvent]:
        runner = self._runner
        if runner is None:
            from .runner import run_job

            runner = run_job
        while self._queue:
            queued = self._queue.popleft()
            job = self.claim(queued)
            if job is None:
                yield self.skipped(queued)
                continue
            try:
                yield from runner(job, datasets=self.datasets)
            finally:
                self.release(job)


EXECUTORS = ("local", "ray")


def make_executor(name: str, address: str | None = None, workers: int | None = None) -> Executor | None:
    """The executor named on the command line: None for ``local`` (the harness's default, which shares its
    dataset cache), or a :class:`~dfzoo.benchmark.ray_executor.RayExecutor`."""
    if name == "local":
        if address or workers:
            raise ValueError("--address and --workers apply to --executor ray")
        return None
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers)
    raise ValueError(f"unknown executor {name!r}; use {' or '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Executor", "Job", "JobEvent", "LocalExecutor", "RowTask", "make_executor"]
