"""The benchmark harness: plan jobs from protocols, run them on an executor, append every row to the store.

A job is one (protocol, detector entry), run by :func:`dfzoo.benchmark.runner.run_job` wherever the executor
runs it. Planning validates everything first (device, perturbations, detector parameters) so a mistake fails
before any work. Each finished row is appended at once, so an interrupted run loses at most the row in
progress; a re-run skips every key already stored with status ``ok``. A detector that raises (in its
factory, ``fit`` or ``score``) becomes rows with status ``error`` and the run goes on.

The harness never looks at a detector's or dataset's name: everything specific comes from the protocol,
the registry and the detector's own ``describe()`` / ``extra_metrics()``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entries import ResolvedDetector, resolve_detectors
from .executor import Executor, Job, LocalExecutor, RowTask
from .protocol import Protocol, check_perturbations, load_protocol, settings_hash
from .rows import base_row, task_row
from .runner import load_dataset
from .splits import expand_protocol, split_dataset
from .store import ERROR, OK, SKIPPED, ResultStore

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a :func:`run_benchmark` call did; ``rows`` are the rows it appended (in order)."""

    store_dir: Path
    jobs_planned: int = 0
    jobs_run: int = 0
    jobs_complete: int = 0  # jobs whose every row was already in the store
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(row.get("status") == status for row in self.rows)

    @property
    def rows_ok(self) -> int:
        return self.count(OK)

    @property
    def rows_error(self) -> int:
        return self.count(ERROR)

    @property
    def rows_skipped(self) -> int:
        return self.count(SKIPPED)


# -- planning --------------------------------------------------------------------------------------------
def run_benchmark(
    protocols: Protocol | str | Path | Sequence[Protocol | str | Path],
    store_dir: str | Path,
    registry: Any = None,
    executor: Executor | None = None,
    progress: bool = True,
    device: str | None = None,
) -> RunSummary:
    """Run ``protocols`` into the store at ``store_dir`` (created if needed) and return a summary.

    ``protocols`` may be :class:`Protocol` objects or TOML paths. Rows already stored with status ``ok`` are
    not recomputed; fitted detectors saved by an earlier run are reused. ``executor`` defaults to a
    :class:`LocalExecutor`; ``device=None`` lets each detector choose (CUDA when available).
    """
    from tqdm.auto import tqdm

    from dfzoo.registry import current_registry, use_registry

    started = time.perf_counter()
    registry = registry or current_registry()
    items = [protocols] if isinstance(protocols, (Protocol, str, Path)) else list(protocols)
    loaded = [p if isinstance(p, Protocol) else load_protocol(p) for p in items]
    store = ResultStore(store_dir)
    summary = RunSummary(Path(store_dir))
    datasets: dict[Any, Any] = {}
    executor = executor or LocalExecutor(datasets=datasets)
    executor.bind(store, datasets)  # jobs are claimed on the store as they start: drivers never duplicate work
    with use_registry(registry):
        jobs, planned_rows = _plan(loaded, store, registry, datasets, summary, device, progress, executor.check_device)
        for row in planned_rows:
            store.append(row)
            summary.rows.append(row)
        for job in jobs:
            executor.submit(job)
        bar = tqdm(total=len(jobs), desc="benchmark", unit="job", disable=not progress or not jobs)
        try:
            for event in executor.results():
                if event.kind == "started":
                    bar.set_postfix_str(f"{event.info.get('protocol')} / {event.info.get('label')}", refresh=True)
                elif event.kind == "row" and event.row is not None:
                    if event.scores is not None:
                        store.save_scores(event.row["row_id"], event.labels, event.scores, ids=event.ids)
                    store.append(event.row)
                    summary.rows.append(event.row)
                elif event.kind == "finished":
                    summary.jobs_run += 1
                    bar.update(1)
                elif event.kind == "skipped":
                    summary.notes.append(f"{event.info.get('label')}: skipped, {event.info.get('reason')}")
                    bar.update(1)
        finally:
            bar.close()
            executor.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _plan(
    protocols: list[Protocol],
    store: ResultStore,
    registry: Any,
    datasets: dict[Any, Any],
    summary: RunSummary,
    device: str | None,
    progress: bool,
    check_device: Callable[[str | None], None],
) -> tuple[list[Job], list[dict[str, Any]]]:
    """Validate every protocol first (fail before any work), expand leave-one-out protocols into their folds,
    then list the jobs with rows still missing."""
    _unique_names(protocols)
    check_device(device)  # an unknown device, or one absent where jobs run: one error before any work
    for protocol in protocols:  # every detector and parameter value is checked before any dataset is opened
        check_perturbations(protocol, registry)
        resolve_detectors(protocol, registry, check_weights=False)
    prepared = []
    for protocol in protocols:
        # the dataset first: opening a built-in dataset may build the weights some detectors need (the zoo's)
        dataset, fingerprint = load_dataset(protocol, registry, datasets, progress=progress)
        detectors = resolve_detectors(protocol, registry)
        for concrete in expand_protocol(protocol, dataset):  # a leave-one-out protocol runs as its folds
            split = split_dataset(concrete, dataset)
            summary.notes.extend(f"{concrete.name}: {note}" for note in split.notes)
            prepared.append((concrete, detectors, dataset, fingerprint, split))
    _unique_names([protocol for protocol, *_ in prepared])
    done = store.done_keys()
    latest = store.latest()
    jobs: list[Job] = []
    rows: list[dict[str, Any]] = []
    for protocol, detectors, dataset, fingerprint, split in prepared:
        settings = settings_hash(protocol, fingerprint)
        for detector in detectors:
            summary.jobs_planned += 1
            job_id = make_job_id(settings, detector)
            tasks = [
                RowTask(row_key(job_id, generator, perturbation), generator, perturbation)
                for perturbation in protocol.perturbations
                for generator in split.test_generators
            ]
            pending = tuple(task for task in tasks if task.key not in done)
            if not pending:
                summary.jobs_complete += 1
                continue
            job = Job(
                job_id=job_id,
                protocol=protocol,
                detector=detector.name,
                params=dict(detector.params),
                label=detector.label,
                params_hash=detector.params_hash,
                settings_hash=settings,
                dataset_fingerprint=fingerprint,
                tasks=pending,
                model_dir=str(store.model_dir(job_id)),
                device=device,
                progress=progress,
            )
            if detector.skip_reason:
                base = base_row(job, dataset, split)
                for task in pending:
                    previous = latest.get(task.key, {})
                    if previous.get("status") == SKIPPED and previous.get("reason") == detector.skip_reason:
                        continue  # recorded already; do not grow the store on every run
                    rows.append(task_row(base, task, split, SKIPPED, reason=detector.skip_reason))
                continue
            jobs.append(job)
    return jobs, rows


def _unique_names(protocols: Sequence[Protocol]) -> None:
    names = Counter(p.name for p in protocols)
    if any(count > 1 for count in names.values()):
        raise ValueError(f"protocol names must be unique in one run: {', '.join(n for n, c in names.items() if c > 1)}")


def make_job_id(settings: str, detector: ResolvedDetector) -> str:
    text = json.dumps([settings, detector.name, detector.params_hash])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_key(job_id: str, generator: str, perturbation: str) -> str:
    """The resume key of a row: job (protocol settings + detector + params), test generator, perturbation."""
    return f"{job_id}|{generator}|{perturbation}"


__all__ = ["RunSummary", "make_job_id", "row_key", "run_benchmark"]
