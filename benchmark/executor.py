"""Where benchmark jobs run: the :class:`Executor` interface and the in-process :class:`LocalExecutor`.

A :class:`Job` is plain, picklable data (a protocol, a detector name and parameters, ids and the row keys
still to compute), never a live model, so a distributed executor (a process pool, a cluster queue) can be
added without touching detectors: it ships jobs to workers that call :func:`dfzoo.benchmark.runner.run_job`
and streams the :class:`JobEvent` objects back. The harness alone writes the result store.

Workers find plugins through :func:`dfzoo.current_registry` (installed plugins); a job names the folder its
fitted model goes to (``model_dir``, under the store), so workers of a distributed executor need that folder
on a shared filesystem; they never open the store itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .protocol import Protocol


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
    """Something a running job reports: ``"started"``, a finished ``"row"``, or ``"finished"``.

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

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Queue a job."""

    @abstractmethod
    def results(self) -> Iterator[JobEvent]:
        """Events of every submitted job until all have finished."""

    def close(self) -> None:
        """Release workers (nothing to do for in-process execution)."""


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
            job = self._queue.popleft()
            yield from runner(job, datasets=self.datasets)


__all__ = ["Executor", "Job", "JobEvent", "LocalExecutor", "RowTask"]
