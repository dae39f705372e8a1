"""One benchmark job, run where it is called (in this process or on a worker): the harness's image path.

Build the detector by name, ``setup`` it with the protocol's run settings, fit it once on views of the
training set (or reload the model an earlier run saved in the job's ``model_dir``), set its decision
threshold, then score every test generator under every test perturbation. The detector is handed sample
*views*: :meth:`~dfzoo.data.sample.Sample.load` decodes and applies the perturbation, file paths are hidden
(unless the spec declares ``reads_files``, in which case a probe checks that perturbations reach it).
Whatever a plugin raises becomes an error row; only a user's interrupt stops the run.

Imports nothing from the harness: executors ship :class:`~dfzoo.benchmark.executor.Job` objects to
:func:`run_job` and the harness alone writes the store.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfzoo.data.sample import DatasetIndex, Sample, content_id

from . import metrics
from .executor import Job, JobEvent, RowTask
from .protocol import Protocol
from .protocol_datasets import dataset_source, open_protocol_dataset
from .rows import base_row, error_record, now, safe_dict, task_row
from .splits import Split, split_dataset
from .store import ERROR, OK, SKIPPED

if TYPE_CHECKING:
    from dfzoo.detector import RunContext
    from dfzoo.registry import Registry

log = logging.getLogger(__name__)
MAX_NAN_CHECKS = 200  # undecodable-image reasons are looked up for at most this many NaN scores per row


def load_dataset(
    protocol: Protocol, registry: Registry, cache: dict[Any, Any] | None = None, *, progress: bool = True
) -> tuple[DatasetIndex, str]:
    """The protocol's dataset and its fingerprint, memoised in ``cache`` for the duration of a run."""
    key = (
        str(dataset_source(protocol, registry)),
        protocol.layout,
        json.dumps(dict(protocol.dataset_params), sort_keys=True, default=str),
        protocol.test_datasets,
    )
    if cache is not None and key in cache:
        return cache[key]
    dataset = open_protocol_dataset(protocol, registry, progress=progress)
    value = (dataset, dataset.fingerprint())
    if cache is not None:
        cache[key] = value
    return value


def run_job(job: Job, datasets: dict[Any, Any] | None = None) -> Iterator[JobEvent]:
    """Run one job where it is called (in this process), yielding ``started``, each ``row``, ``finished``.

    Uses :func:`dfzoo.current_registry` for plugins. Never raises for a detector's failure (those become
    error rows); ``KeyboardInterrupt`` propagates, leaving the rows already yielded.
    """
    import dfzoo
    from dfzoo.detector import META_FILE
    from dfzoo.registry import current_registry
    from dfzoo.transforms import make_perturbation

    registry = current_registry()
    spec = registry.detector(job.detector)
    protocol = job.protocol
    yield JobEvent("started", job.job_id, info={"protocol": protocol.name, "label": job.label})
    try:
        dataset, fingerprint = load_dataset(protocol, registry, datasets)
        if fingerprint != job.dataset_fingerprint:
            raise RuntimeError(
                f"dataset {dataset.name!r} changed since the run was planned "
                f"({job.dataset_fingerprint} -> {fingerprint})"
            )
        split = split_dataset(protocol, dataset)
    except Exception as error:
        base = base_row(job, None, None)
        for task in job.tasks:
            yield JobEvent(
                "row", job.job_id, row=task_row(base, task, None, ERROR, error=error_record(error, "dataset"))
            )
        yield JobEvent("finished", job.job_id)
        return
    base = base_row(job, dataset, split)
    model_dir = Path(job.model_dir)
    context = run_context(job)
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
            train_views = views(
                split.train, make_perturbation(protocol.train_perturbation, registry), protocol.seed, hide_path
            )
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
        train_used = {
            "train_real_used": sum(s.label == 0 for s in split.train) - unused[0],
            "train_fake_used": sum(s.label == 1 for s in split.train) - unused[1],
        }
        describe = safe_dict(detector.describe)
        stage = "score"  # the training reals, for a threshold at a fixed FPR
        threshold, policy, threshold_fpr = decision_threshold(detector, describe, split, protocol.seed, hide_path)
    except PLUGIN_FAILURES as error:
        for task in job.tasks:
            yield JobEvent(
                "row",
                job.job_id,
                row=task_row(base, task, split, ERROR, error=error_record(error, stage), fit_seconds=fit_seconds),
            )
        yield JobEvent("finished", job.job_id)
        return
    base |= {
        "describe": describe,
        "threshold": threshold,
        "threshold_policy": policy,
        "threshold_fpr": threshold_fpr,
        "model_reused": reused,
        "train_skipped": train_skipped,
        "train_used": train_used,
        "fit_seconds": round(fit_seconds, 3),
        "model_saved": not save_error,
        "save_error": save_error,
    }
    for perturbation in dict.fromkeys(task.perturbation for task in job.tasks):
        tasks = [t for t in job.tasks if t.perturbation == perturbation]
        try:
            transform = make_perturbation(perturbation, registry)
            unreached = (
                spec.reads_files
                and not transform.is_identity
                and not perturbation_reaches(detector, split, transform, protocol.seed)
            )
        except PLUGIN_FAILURES as error:
            for task in tasks:
                yield JobEvent(
                    "row", job.job_id, row=task_row(base, task, split, ERROR, error=error_record(error, "setup"))
                )
            continue
        if unreached:
            reason = (
                f"perturbation {perturbation!r} does not reach {job.detector} (it reads files itself and its "
                "scores on probe images did not change): no robustness row"
            )
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
            yield _score_task(
                detector,
                task,
                [test_views[id(s)] for s in samples],
                base,
                split,
                scored,
                protocol,
                threshold,
                job.job_id,
            )
    yield JobEvent("finished", job.job_id)


def run_context(job: Job) -> RunContext:
    """The run settings a job's detector is set up with (the same wherever the job runs)."""
    from dfzoo.detector import RunContext

    model_dir = Path(job.model_dir)
    return RunContext(
        preprocess=job.protocol.preprocess,
        seed=job.protocol.seed,
        device=job.device,
        batch_size=job.protocol.batch_size,
        progress=job.progress,
        workdir=model_dir.with_name(f"{model_dir.name}.work"),
    )


def job_samples(job: Job, split: Split, registry: Registry) -> list[Sample]:
    """Every view a job's detector is handed: the training set under the training perturbation, then each
    pending test set under each pending perturbation (what a pre-pass may compute ahead of the job)."""
    from dfzoo.transforms import make_perturbation

    protocol = job.protocol
    hide_path = not registry.detector(job.detector).reads_files
    out = views(split.train, make_perturbation(protocol.train_perturbation, registry), protocol.seed, hide_path)
    for perturbation in dict.fromkeys(task.perturbation for task in job.tasks):
        transform = make_perturbation(perturbation, registry)
        generators = dict.fromkeys(t.test_generator for t in job.tasks if t.perturbation == perturbation)
        tested = {id(s): s for g in generators for s in split.tests[g]}  # shared reals once
        out.extend(views(list(tested.values()), transform, protocol.seed, hide_path))
    return out


# Everything a plugin may raise becomes an error row; only an interrupt by the user stops the run.
PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)
PROBE_IMAGES = 4  # test images scored clean and perturbed to check a file-reading detector sees perturbations
THRESHOLD_REALS = 512  # at most this many training reals are scored to set a threshold at a fixed FPR


def views(samples: Sequence[Sample], perturbation: Any, seed: int, hide_path: bool) -> list[Sample]:
    """What a detector is handed: each sample as a view that applies ``perturbation`` when loaded."""
    return [sample.view(perturbation, seed, hide_path=hide_path) for sample in samples]


def decision_threshold(
    detector: Any, describe: dict[str, Any], split: Split, seed: int, hide_path: bool
) -> tuple[float, str, float | None]:
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
    scores = np.asarray(
        detector.score(views([reals[i] for i in sorted(chosen)], None, seed, hide_path)), dtype=np.float64
    )
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


def _score_task(
    detector: Any,
    task: RowTask,
    samples: list[Sample],
    base: dict[str, Any],
    split: Split,
    scored: dict[int, float],
    protocol: Protocol,
    threshold: float,
    job_id: str,
) -> JobEvent:
    """Score one test set of views (reusing scores of views already scored) and turn it into a row event."""
    started_at = now()
    tick = time.perf_counter()
    try:
        todo = [s for s in samples if id(s) not in scored]
        if todo:
            returned = np.asarray(detector.score(todo), dtype=np.float64).reshape(-1)
            if returned.size != len(todo):
                raise ValueError(f"score() returned {returned.size} values for {len(todo)} samples")
            scored.update(zip(map(id, todo), returned.tolist(), strict=True))
        score_seconds = time.perf_counter() - tick
        scores = np.array([scored[id(s)] for s in samples], dtype=np.float64)
        labels = np.array([s.label for s in samples], dtype=np.int64)
        values = metrics.binary_metrics(labels, scores, threshold, n_bootstrap=protocol.bootstrap, seed=protocol.seed)
    except PLUGIN_FAILURES as error:
        row = task_row(base, task, split, ERROR, error=error_record(error, "score"), started_at=started_at)
        return JobEvent("row", job_id, row=row)
    reasons = nan_reasons(samples, scores, detector.skipped)
    extra = safe_dict(lambda: detector.extra_metrics(samples))
    row = task_row(
        base,
        task,
        split,
        OK,
        metrics=values,
        n_skipped=int(np.isnan(scores).sum()),
        skipped_reasons=reasons,
        extra=extra,
        score_seconds=round(score_seconds, 3),
        n_scored=len(todo),
        started_at=started_at,
    )
    ids = [s.display_name if s.file is not None else content_id(s) for s in samples]
    return JobEvent("row", job_id, row=row, labels=labels, scores=scores, ids=ids)


def nan_reasons(
    samples: Sequence[Sample], scores: np.ndarray, recorded: dict[str, str] | None = None
) -> dict[str, int]:
    """Why samples got NaN scores: the reason the detector recorded, else the decoder's reason when the view
    does not load, else "detector returned NaN"."""
    from dfzoo.data.decode import ImageDecodeError

    recorded = recorded or {}
    reasons: Counter[str] = Counter()
    for checked, position in enumerate(np.flatnonzero(np.isnan(scores))):
        sample = samples[int(position)]
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


__all__ = [
    "PLUGIN_FAILURES",
    "decision_threshold",
    "job_samples",
    "load_dataset",
    "nan_reasons",
    "perturbation_reaches",
    "run_context",
    "run_job",
    "views",
]
