"""The benchmark harness: plan jobs from protocols, run them on an executor, append every row to the store.

A job is one (protocol, detector entry): build the detector by name, ``setup`` it with the protocol's run
settings, fit it once on the training set (or reload the model a previous run saved), then score every test
generator under every test perturbation. Each finished row is appended at once, so an interrupted run loses
at most the row in progress; a re-run skips every key already stored with status ``ok``. A detector that
raises (in its factory, ``fit`` or ``score``) becomes rows with status ``error`` and the run goes on.

The harness never looks at a detector's or dataset's name: everything specific comes from the protocol,
the registry and the detector's own ``describe()`` / ``extra_metrics()``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.data.sample import DatasetIndex, Sample, content_id

from . import metrics
from .executor import Executor, Job, JobEvent, LocalExecutor, RowTask
from .protocol import (Protocol, ResolvedDetector, Split, check_perturbations, dataset_source, load_protocol,
                       open_protocol_dataset, resolve_detectors, settings_hash, split_dataset)
from .store import ERROR, OK, SKIPPED, ResultStore, clean_json

log = logging.getLogger(__name__)
VERSION_PACKAGES = {"torch": "torch", "timm": "timm", "open_clip": "open_clip_torch", "diffusers": "diffusers",
                    "sklearn": "scikit-learn", "numpy": "numpy", "dfzoo": "dfzoo"}
MAX_NAN_CHECKS = 200  # undecodable-image reasons are looked up for at most this many NaN scores per row


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
def run_benchmark(protocols: Protocol | str | Path | Sequence[Protocol | str | Path], store_dir: str | Path,
                  registry: Any = None, executor: Executor | None = None, progress: bool = True,
                  device: str | None = None) -> RunSummary:
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
    with use_registry(registry):
        jobs, planned_rows = _plan(loaded, store, registry, datasets, summary, device, progress)
        for row in planned_rows:
            store.append(row)
            summary.rows.append(row)
        executor = executor or LocalExecutor(datasets=datasets)
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
        finally:
            bar.close()
            executor.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _plan(protocols: list[Protocol], store: ResultStore, registry: Any, datasets: dict[Any, Any],
          summary: RunSummary, device: str | None, progress: bool) -> tuple[list[Job], list[dict[str, Any]]]:
    """Validate every protocol first (fail before any work), then list the jobs with rows still missing."""
    names = Counter(p.name for p in protocols)
    if any(count > 1 for count in names.values()):
        raise ValueError(f"protocol names must be unique in one run: {', '.join(n for n, c in names.items() if c > 1)}")
    from dfzoo.device import pick_device
    pick_device(device)  # an unknown or absent device: one error before any work
    for protocol in protocols:  # every detector and parameter value is checked before any dataset is opened
        check_perturbations(protocol, registry)
        resolve_detectors(protocol, registry, check_weights=False)
    prepared = []
    for protocol in protocols:
        # the dataset first: opening a built-in dataset may build the weights some detectors need (the zoo's)
        dataset, fingerprint = load_dataset(protocol, registry, datasets)
        detectors = resolve_detectors(protocol, registry)
        split = split_dataset(protocol, dataset)
        summary.notes.extend(f"{protocol.name}: {note}" for note in split.notes)
        prepared.append((protocol, detectors, dataset, fingerprint, split))
    done = store.done_keys()
    latest = store.latest()
    jobs: list[Job] = []
    rows: list[dict[str, Any]] = []
    for protocol, detectors, dataset, fingerprint, split in prepared:
        settings = settings_hash(protocol, fingerprint)
        for detector in detectors:
            summary.jobs_planned += 1
            job_id = make_job_id(settings, detector)
            tasks = [RowTask(row_key(job_id, generator, perturbation), generator, perturbation)
                     for perturbation in protocol.perturbations for generator in split.test_generators]
            pending = tuple(task for task in tasks if task.key not in done)
            if not pending:
                summary.jobs_complete += 1
                continue
            job = Job(job_id=job_id, protocol=protocol, detector=detector.name, params=dict(detector.params),
                      label=detector.label, params_hash=detector.params_hash, settings_hash=settings,
                      dataset_fingerprint=fingerprint, tasks=pending, store_dir=str(store.root), device=device,
                      progress=progress)
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


def make_job_id(settings: str, detector: ResolvedDetector) -> str:
    text = json.dumps([settings, detector.name, detector.params_hash])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_key(job_id: str, generator: str, perturbation: str) -> str:
    """The resume key of a row: job (protocol settings + detector + params), test generator, perturbation."""
    return f"{job_id}|{generator}|{perturbation}"


def load_dataset(protocol: Protocol, registry: Any, cache: dict[Any, Any] | None = None
                 ) -> tuple[DatasetIndex, str]:
    """The protocol's dataset and its fingerprint, memoised in ``cache`` for the duration of a run."""
    key = (str(dataset_source(protocol, registry)), protocol.layout,
           json.dumps(dict(protocol.dataset_params), sort_keys=True, default=str))
    if cache is not None and key in cache:
        return cache[key]
    dataset = open_protocol_dataset(protocol, registry)
    value = (dataset, dataset.fingerprint())
    if cache is not None:
        cache[key] = value
    return value


# -- one job ---------------------------------------------------------------------------------------------
def run_job(job: Job, datasets: dict[Any, Any] | None = None) -> Iterator[JobEvent]:
    """Run one job where it is called (in this process), yielding ``started``, each ``row``, ``finished``.

    Uses :func:`dfzoo.current_registry` for plugins. Never raises for a detector's failure (those become
    error rows); ``KeyboardInterrupt`` propagates, leaving the rows already yielded.
    """
    import dfzoo
    from dfzoo.detector import META_FILE, RunContext
    from dfzoo.registry import current_registry
    from dfzoo.transforms import make_perturbation
    registry = current_registry()
    spec = registry.detector(job.detector)
    protocol = job.protocol
    yield JobEvent("started", job.job_id, info={"protocol": protocol.name, "label": job.label})
    try:
        dataset, fingerprint = load_dataset(protocol, registry, datasets)
        if fingerprint != job.dataset_fingerprint:
            raise RuntimeError(f"dataset {dataset.name!r} changed since the run was planned "
                               f"({job.dataset_fingerprint} -> {fingerprint})")
        split = split_dataset(protocol, dataset)
    except Exception as error:
        base = base_row(job, None, None)
        for task in job.tasks:
            yield JobEvent("row", job.job_id, row=task_row(base, task, None, ERROR, error=_error(error, "dataset")))
        yield JobEvent("finished", job.job_id)
        return
    base = base_row(job, dataset, split)
    store = ResultStore(job.store_dir)
    model_dir = store.model_dir(job.job_id)
    context = RunContext(preprocess=protocol.preprocess, seed=protocol.seed, device=job.device,
                         batch_size=protocol.batch_size, progress=job.progress,
                         workdir=store.models_dir / f"{job.job_id}.work")
    hide_path = not spec.reads_files
    fit_seconds, reused, save_error, stage = 0.0, False, "", "factory"
    try:
        detector = None
        if (model_dir / META_FILE).exists():
            try:
                detector = dfzoo.load_fitted(model_dir, registry=registry)
                reused = True
            except Exception as error:  # a damaged or stale save: fit again
                log.warning("%s: could not reload %s (%s); fitting again", job.label, model_dir, error)
        if detector is None:
            detector = dfzoo.load_detector(job.detector, registry=registry, **job.params)
            stage = "fit"
            detector.setup(context)
            train_views = views(split.train, make_perturbation(protocol.train_perturbation, registry),
                                protocol.seed, hide_path)
            tick = time.perf_counter()
            detector.fit(train_views)
            fit_seconds = time.perf_counter() - tick
            try:
                detector.save(model_dir)
            except Exception as error:  # scoring can go on; the next run will fit again
                save_error = f"{type(error).__name__}: {error}"
                log.warning("%s: could not save the fitted detector: %s", job.label, save_error)
        stage = "setup"
        detector.setup(context)
        train_skipped = dict(Counter(detector.skipped.values()))
        unused = Counter(s.label for s in split.train if s.display_name in detector.skipped)
        train_used = {"train_real_used": sum(s.label == 0 for s in split.train) - unused[0],
                      "train_fake_used": sum(s.label == 1 for s in split.train) - unused[1]}
        describe = _safe(detector.describe)
        stage = "score"  # the training reals, for a threshold at a fixed FPR
        threshold, policy, threshold_fpr = decision_threshold(detector, describe, split, protocol.seed, hide_path)
    except PLUGIN_FAILURES as error:
        for task in job.tasks:
            yield JobEvent("row", job.job_id, row=task_row(base, task, split, ERROR, error=_error(error, stage),
                                                            fit_seconds=fit_seconds))
        yield JobEvent("finished", job.job_id)
        return
    base |= {"describe": describe, "threshold": threshold, "threshold_policy": policy,
             "threshold_fpr": threshold_fpr, "model_reused": reused, "train_skipped": train_skipped,
             "train_used": train_used,
             "fit_seconds": round(fit_seconds, 3), "model_saved": not save_error, "save_error": save_error}
    for perturbation in dict.fromkeys(task.perturbation for task in job.tasks):
        tasks = [t for t in job.tasks if t.perturbation == perturbation]
        try:
            transform = make_perturbation(perturbation, registry)
            unreached = spec.reads_files and not transform.is_identity and not perturbation_reaches(
                detector, split, transform, protocol.seed)
        except PLUGIN_FAILURES as error:
            for task in tasks:
                yield JobEvent("row", job.job_id, row=task_row(base, task, split, ERROR, error=_error(error, "setup")))
            continue
        if unreached:
            reason = (f"perturbation {perturbation!r} does not reach {job.detector} (it reads files itself and its "
                      "scores on probe images did not change): no robustness row")
            for task in tasks:
                yield JobEvent("row", job.job_id, row=task_row(base, task, split, SKIPPED, reason=reason))
            continue
        test_views: dict[int, Sample] = {}  # id(stored sample) -> its view: shared reals are scored once
        scored: dict[int, float] = {}
        for task in tasks:
            samples = split.tests[task.test_generator]
            for sample in samples:
                if id(sample) not in test_views:
                    test_views[id(sample)] = sample.view(transform, protocol.seed, hide_path=hide_path)
            yield _score_task(detector, task, [test_views[id(s)] for s in samples], base, split, scored, protocol,
                              threshold, job.job_id)
    yield JobEvent("finished", job.job_id)


# Everything a plugin may raise becomes an error row; only an interrupt by the user stops the run.
PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)
PROBE_IMAGES = 4  # test images scored clean and perturbed to check a file-reading detector sees perturbations
THRESHOLD_REALS = 512  # at most this many training reals are scored to set a threshold at a fixed FPR


def views(samples: Sequence[Sample], perturbation: Any, seed: int, hide_path: bool) -> list[Sample]:
    """What a detector is handed: each sample as a view that applies ``perturbation`` when loaded."""
    return [sample.view(perturbation, seed, hide_path=hide_path) for sample in samples]


def decision_threshold(detector: Any, describe: dict[str, Any], split: Split, seed: int,
                       hide_path: bool) -> tuple[float, str, float | None]:
    """``(threshold, policy, fpr)``: the detector's own threshold where it states one, else the score that
    puts :data:`metrics.DEFAULT_THRESHOLD_FPR` of (at most :data:`THRESHOLD_REALS`) clean training reals
    above it. A detector that cannot score its training reals gets the fixed policy (no accuracy shown)."""
    threshold, policy = metrics.threshold_policy(describe)
    if policy != metrics.FIXED_POLICY:
        return threshold, policy, None
    reals = [s for s in split.train if s.label == 0]
    if not reals:
        return threshold, policy, None
    chosen = np.random.default_rng(seed).permutation(len(reals))[:THRESHOLD_REALS]
    scores = np.asarray(detector.score(views([reals[i] for i in sorted(chosen)], None, seed, hide_path)),
                        dtype=np.float64)
    if not np.isfinite(scores).any():
        return threshold, policy, None
    fpr = metrics.DEFAULT_THRESHOLD_FPR
    return metrics.threshold_from_reals(scores, fpr), metrics.TRAIN_REAL_QUANTILE_POLICY, fpr


def perturbation_reaches(detector: Any, split: Split, perturbation: Any, seed: int) -> bool:
    """Whether ``perturbation`` changes a file-reading detector's score on any of a few probe test images."""
    probes = [s for samples in split.tests.values() for s in samples][:PROBE_IMAGES]
    if not probes:
        return True
    clean = np.asarray(detector.score(views(probes, None, seed, hide_path=False)), dtype=np.float64)
    moved = np.asarray(detector.score(views(probes, perturbation, seed, hide_path=False)), dtype=np.float64)
    return not np.array_equal(clean, moved, equal_nan=True)


def _score_task(detector: Any, task: RowTask, samples: list[Sample], base: dict[str, Any], split: Split,
                scored: dict[int, float], protocol: Protocol, threshold: float, job_id: str) -> JobEvent:
    """Score one test set of views (reusing scores of views already scored) and turn it into a row event."""
    started_at = _now()
    tick = time.perf_counter()
    try:
        todo = [s for s in samples if id(s) not in scored]
        if todo:
            values = np.asarray(detector.score(todo), dtype=np.float64).reshape(-1)
            if values.size != len(todo):
                raise ValueError(f"score() returned {values.size} values for {len(todo)} samples")
            scored.update(zip(map(id, todo), values.tolist()))
        score_seconds = time.perf_counter() - tick
        scores = np.array([scored[id(s)] for s in samples], dtype=np.float64)
        labels = np.array([s.label for s in samples], dtype=np.int64)
        values = metrics.binary_metrics(labels, scores, threshold, n_bootstrap=protocol.bootstrap, seed=protocol.seed)
    except PLUGIN_FAILURES as error:
        row = task_row(base, task, split, ERROR, error=_error(error, "score"), started_at=started_at)
        return JobEvent("row", job_id, row=row)
    reasons = nan_reasons(samples, scores, detector.skipped)
    extra = _safe(lambda: detector.extra_metrics(samples))
    row = task_row(base, task, split, OK, metrics=values, n_skipped=int(np.isnan(scores).sum()),
                   skipped_reasons=reasons, extra=extra, score_seconds=round(score_seconds, 3), n_scored=len(todo),
                   started_at=started_at)
    ids = [s.display_name if s.file is not None else content_id(s) for s in samples]
    return JobEvent("row", job_id, row=row, labels=labels, scores=scores, ids=ids)


def nan_reasons(samples: Sequence[Sample], scores: np.ndarray, recorded: dict[str, str] | None = None
                ) -> dict[str, int]:
    """Why samples got NaN scores: the reason the detector recorded, else the decoder's reason when the view
    does not load, else "detector returned NaN"."""
    from dfzoo.data.decode import ImageDecodeError
    recorded = recorded or {}
    reasons: Counter[str] = Counter()
    for checked, position in enumerate(np.flatnonzero(np.isnan(scores))):
        sample = samples[position]
        if sample.display_name in recorded:
            reasons[recorded[sample.display_name]] += 1
            continue
        if checked >= MAX_NAN_CHECKS:
            reasons["not checked"] += 1
            continue
        try:
            sample.load()
            reasons["detector returned NaN"] += 1
        except ImageDecodeError as error:
            reasons[error.reason] += 1
    return dict(reasons)


# -- rows ------------------------------------------------------------------------------------------------
def base_row(job: Job, dataset: DatasetIndex | None, split: Split | None) -> dict[str, Any]:
    """Fields every row of a job shares: what makes its numbers comparable."""
    protocol = job.protocol
    return {
        "job_id": job.job_id, "protocol": protocol.name, "protocol_description": protocol.description,
        "protocol_hash": job.settings_hash, "detector": job.detector, "label": job.label,
        "params": job.params, "params_hash": job.params_hash, "describe": {},
        "preprocess": {"mode": protocol.preprocess.mode, "size": protocol.preprocess.size,
                       "key": protocol.preprocess.key},
        "train_perturbation": protocol.train_perturbation,
        "dataset": {"name": dataset.name if dataset else protocol.dataset, "source": protocol.dataset,
                    "layout": dataset.layout if dataset else protocol.layout, "fingerprint": job.dataset_fingerprint},
        "train_generators": split.train_generators if split else list(protocol.train_generators),
        "seed": protocol.seed, "cap_per_class": protocol.cap_per_class, "bootstrap": protocol.bootstrap,
        "device": job.device or "auto", "versions": package_versions(), "commit": git_commit(),
        "threshold": metrics.DEFAULT_THRESHOLD, "threshold_policy": "fixed",
    }


def task_row(base: dict[str, Any], task: RowTask, split: Split | None, status: str, **fields: Any) -> dict[str, Any]:
    """A full row for one task from the job's base fields (status, counts, timings, metrics or error)."""
    row = dict(base)
    row.update({"row_id": uuid.uuid4().hex[:16], "key": task.key, "status": status,
                "test_generator": task.test_generator, "test_perturbation": task.perturbation,
                "test_family": split.families.get(task.test_generator, "") if split else "",
                "seen_in_training": task.test_generator in (split.train_generators if split else []),
                "counts": split.counts(task.test_generator) if split and task.test_generator in split.tests else {},
                "metrics": {}, "n_skipped": 0, "skipped_reasons": {}, "extra": {}, "score_seconds": 0.0,
                "started_at": fields.pop("started_at", None) or _now(), "finished_at": _now()})
    row.update(fields)
    return clean_json(row)


def _error(error: BaseException, stage: str) -> dict[str, str]:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return {"stage": stage, "type": type(error).__name__, "message": str(error)[:2000],
            "traceback": "".join(lines[-6:])[-3000:]}


def _safe(call: Any) -> dict[str, Any]:
    """A detector's describe()/extra_metrics() as JSON-friendly data; a failure is reported, not raised."""
    try:
        value = call()
        return clean_json(value) if isinstance(value, dict) else {"value": clean_json(value)}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and the libraries results depend on ("not installed" when absent)."""
    versions = {"python": sys.version.split()[0]}
    for key, distribution in VERSION_PACKAGES.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[key] = "not installed"
    return versions


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the dfzoo checkout the code runs from (``+dirty`` never computed: it is slow), or 'unknown'."""
    import dfzoo
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(dfzoo.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


__all__ = ["RunSummary", "base_row", "git_commit", "load_dataset", "make_job_id", "nan_reasons", "package_versions",
           "row_key", "run_benchmark", "run_job", "task_row"]
