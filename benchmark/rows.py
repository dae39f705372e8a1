"""Result rows: the fields every row of a job shares (what makes its numbers comparable), one row per task,
and the provenance they record (package versions, git commit)."""

from __future__ import annotations

import functools
import subprocess
import sys
import traceback
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from dfzoo.data.sample import DatasetIndex

from . import metrics
from .executor import Job, RowTask
from .splits import Split
from .store import clean_json

# The result-row schema (CHANGELOG.md lists what each version changed). Rows without "schema" predate it.
ROW_SCHEMA_VERSION = 2

VERSION_PACKAGES = {
    "torch": "torch",
    "timm": "timm",
    "open_clip": "open_clip_torch",
    "diffusers": "diffusers",
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "dfzoo": "dfzoo",
}


def base_row(job: Job, dataset: DatasetIndex | None, split: Split | None) -> dict[str, Any]:
    """Fields every row of a job shares: what makes its numbers comparable."""
    protocol = job.protocol
    return {
        "schema": ROW_SCHEMA_VERSION,
        "job_id": job.job_id,
        "protocol": protocol.name,
        "protocol_description": protocol.description,
        "protocol_hash": job.settings_hash,
        "protocol_group": protocol.protocol_group or None,  # a leave-one-out fold's protocol; None otherwise
        "held_out": protocol.held_out or None,  # a leave-one-out fold's held-out generator
        "detector": job.detector,
        "label": job.label,
        "params": job.params,
        "params_hash": job.params_hash,
        "describe": {},
        "preprocess": {
            "mode": protocol.preprocess.mode,
            "size": protocol.preprocess.size,
            "key": protocol.preprocess.key,
        },
        "train_perturbation": protocol.train_perturbation,
        "dataset": {
            "name": dataset.name if dataset else protocol.dataset,
            "source": protocol.dataset,
            "layout": dataset.layout if dataset else protocol.layout,
            "fingerprint": job.dataset_fingerprint,
            **_content_identity(dataset),
        },
        "train_generators": split.train_generators if split else list(protocol.train_generators),
        "seed": protocol.seed,
        "cap_per_class": protocol.cap_per_class,
        "bootstrap": protocol.bootstrap,
        "device": job.device or "auto",
        "hardware": hardware(job.device),
        "versions": package_versions(),
        "commit": git_commit(),
        "threshold": metrics.DEFAULT_THRESHOLD,
        "threshold_policy": "fixed",
    }


def task_row(base: dict[str, Any], task: RowTask, split: Split | None, status: str, **fields: Any) -> dict[str, Any]:
    """A full row for one task from the job's base fields (status, counts, timings, metrics or error)."""
    row = dict(base)
    row.update(
        {
            "row_id": uuid.uuid4().hex[:16],
            "key": task.key,
            "status": status,
            "test_generator": task.test_generator,
            "test_perturbation": task.perturbation,
            "test_family": split.families.get(task.test_generator, "") if split else "",
            "test_dataset": split.test_datasets.get(task.test_generator) if split else None,
            "seen_in_training": task.test_generator in (split.train_generators if split else []),
            "counts": split.counts(task.test_generator) if split and task.test_generator in split.tests else {},
            "metrics": {},
            "n_skipped": 0,
            "skipped_reasons": {},
            "extra": {},
            "score_seconds": 0.0,
            "started_at": fields.pop("started_at", None) or now(),
            "finished_at": now(),
        }
    )
    row.update(fields)
    return clean_json(row)


def error_record(error: BaseException, stage: str) -> dict[str, str]:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return {
        "stage": stage,
        "type": type(error).__name__,
        "message": str(error)[:2000],
        "traceback": "".join(lines[-6:])[-3000:],
    }


def safe_dict(call: Any) -> dict[str, Any]:
    """A detector's describe()/extra_metrics() as JSON-friendly data; a failure is reported, not raised."""
    try:
        value = call()
        return clean_json(value) if isinstance(value, dict) else {"value": clean_json(value)}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


def hardware(device: str | None) -> dict[str, str]:
    """Where the row was computed: the device picked for the job's request, the GPU's name, the precision."""
    from dfzoo.device import describe_device

    try:
        return describe_device(device)
    except Exception as error:  # a row still records what it can
        return {"device": device or "auto", "gpu": "", "precision": "", "error": f"{type(error).__name__}: {error}"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(dfzoo.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


__all__ = ["base_row", "error_record", "git_commit", "hardware", "now", "package_versions", "safe_dict", "task_row"]


def _content_identity(dataset: DatasetIndex | None) -> dict[str, Any]:
    """The dataset's own pixel checksum and reference comparison, where it states them (the generator zoo)."""
    metadata = dataset.metadata if dataset else {}
    return {key: metadata[key] for key in ("content_sha256", "reference_match") if key in metadata}
