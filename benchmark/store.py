"""The append-only result store: one JSON row per line in ``results.jsonl``, plus raw scores beside it.

Layout of a store folder::

    results.jsonl          one row per (protocol, detector, test generator, test perturbation) attempt
    scores/<row_id>.npz    labels and raw scores of that row (for ROC curves and re-analysis)
    models/<job_id>/       fitted detectors, reused when a run resumes
    locks/<job_id>.lock    the claim of the driver running that job (see below)

Every row is flushed and fsynced as it is written, so an interrupted run keeps every finished row. A
truncated last line (the process died mid-write) is ignored when reading and never glued to the next row.
Rows are never rewritten: a retried key gets a new row and readers take the latest (:func:`latest_rows`).

Several drivers (``dfzoo run`` processes, on one machine or on nodes sharing the folder) may use one store at
once without doing any work twice: a driver *claims* a job (an exclusive OS file lock on its lock file) before
running it, skips a job another driver holds, and re-reads which rows are stored once it holds the claim.
Appends take a short lock of their own, so rows of two drivers never interleave. OS locks die with their
process: a killed driver never leaves a job claimed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from dfzoo.plain import json_safe as clean_json  # the store's name for the shared rule

log = logging.getLogger(__name__)
RESULTS_FILE = "results.jsonl"
APPEND_WAIT_S = 300.0  # how long an append waits for another driver's append to finish
OK, ERROR, SKIPPED = "ok", "error", "skipped"


class ResultStore:
    """A folder of results (see the module docstring). Safe to read while a run appends."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.results = self.root / RESULTS_FILE
        self.scores_dir = self.root / "scores"
        self.models_dir = self.root / "models"
        self.locks_dir = self.root / "locks"
        self._claims: dict[str, FileLock] = {}

    # -- rows ------------------------------------------------------------------------------------------
    def append(self, row: dict[str, Any]) -> None:
        """Write one row durably (flush + fsync); repairs a truncated last line first."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(clean_json(row), sort_keys=True, allow_nan=False)
        with FileLock(f"{self.results}.lock", timeout=APPEND_WAIT_S), open(self.results, "a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a torn last line: end it so it stays a lone bad line
                    handle.write(b"\n")
            handle.write(line.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rows(self) -> list[dict[str, Any]]:
        """Every readable row in file order; unreadable lines (a torn write) are skipped with a warning."""
        return list(self.iter_rows())

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        if not self.results.exists():
            return
        with open(self.results, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except ValueError:
                    log.warning("%s:%d: unreadable row skipped (interrupted write?)", self.results, number)
                    continue
                if isinstance(row, dict):
                    yield row

    def done_keys(self) -> set[str]:
        """Keys of rows that finished successfully (errored and skipped keys are attempted again)."""
        return {row["key"] for row in self.iter_rows() if row.get("status") == OK and "key" in row}

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last row written for each key."""
        return {row["key"]: row for row in self.iter_rows() if "key" in row}

    # -- sidecars --------------------------------------------------------------------------------------
    def save_scores(
        self,
        row_id: str,
        labels: np.ndarray,
        scores: np.ndarray,
        generators: Iterable[str] | None = None,
        ids: Iterable[str] | None = None,
    ) -> Path:
        """Raw labels and scores of a row (NaN kept) in ``scores/<row_id>.npz``; written atomically.

        ``ids`` names each image (unique within the dataset, e.g. its path relative to the dataset root): an
        image shared by several test sets (the shared reals) has the same id in each, which lets the interval
        of a mean over test sets resample it jointly.
        """
        self.scores_dir.mkdir(parents=True, exist_ok=True)
        path = self.scores_dir / f"{row_id}.npz"
        tmp = path.with_suffix(".tmp.npz")
        arrays: dict[str, np.ndarray] = {
            "labels": np.asarray(labels, dtype=np.int8),
            "scores": np.asarray(scores, dtype=np.float64),
        }
        if generators is not None:
            arrays["generators"] = np.asarray(list(generators), dtype=str)
        if ids is not None:
            arrays["ids"] = np.asarray([str(i) for i in ids], dtype=str)
            if arrays["ids"].shape != arrays["labels"].shape:
                raise ValueError(f"{arrays['ids'].size} ids for {arrays['labels'].size} labels")
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub: **arrays could be allow_pickle
        os.replace(tmp, path)
        return path

    def scores_path(self, row_id: str) -> Path:
        return self.scores_dir / f"{row_id}.npz"

    def load_scores(self, row_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(labels, scores)`` of a row, or None when its sidecar is missing or unreadable."""
        sidecar = self.load_sidecar(row_id)
        return None if sidecar is None else (sidecar.labels, sidecar.scores)

    def load_sidecar(self, row_id: str) -> Sidecar | None:
        """Everything the sidecar of a row holds, or None when it is missing or unreadable (an unreadable one
        is logged: figures and checks that need it then leave the row out, and the log says why)."""
        path = self.scores_path(row_id)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                labels, scores = data["labels"].astype(np.int64), data["scores"].astype(np.float64)
                ids = data["ids"].astype(str) if "ids" in data.files else None
        except (OSError, KeyError, ValueError) as error:
            log.warning("score sidecar %s is unreadable (%s); its row is left out of what needs scores", path, error)
            return None
        if labels.shape != scores.shape or (ids is not None and ids.shape != labels.shape):
            log.warning("score sidecar %s has mismatched labels/scores/ids; its row is left out", path)
            return None
        return Sidecar(labels, scores, ids)

    def model_dir(self, job_id: str) -> Path:
        """Where a job's fitted detector lives: an absolute path, since workers may not share our folder."""
        return (self.models_dir / job_id).absolute()

    # -- claims ----------------------------------------------------------------------------------------
    def claim(self, job_id: str) -> bool:
        """Take this store's claim on ``job_id`` for this driver; False when another driver (or another claim
        in this process) holds it. Held until :meth:`release` or this process ends."""
        if job_id in self._claims:
            return True
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.locks_dir / f"{job_id}.lock", timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            return False
        self._claims[job_id] = lock
        return True

    def release(self, job_id: str) -> None:
        """Give up the claim on ``job_id`` (a no-op when not held)."""
        lock = self._claims.pop(job_id, None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        for job_id in list(self._claims):
            self.release(job_id)


@dataclass(frozen=True)
class Sidecar:
    """The per-image record of a row: labels (0 real, 1 fake), raw scores (NaN kept), image ids if recorded."""

    labels: np.ndarray
    scores: np.ndarray
    ids: np.ndarray | None = None


# Fields that make two rows the same cell of the same configuration: the protocol's content hash (its settings
# and the dataset fingerprint), the dataset fingerprint and training generators again (for rows written before
# the hash covered them), the detector's label and parameters, and the test condition.
ROW_IDENTITY = (
    "protocol",
    "protocol_hash",
    "dataset.fingerprint",
    "train_generators",
    "label",
    "params_hash",
    "test_generator",
    "test_perturbation",
)


def row_field(row: dict[str, Any], name: str) -> Any:
    """A row's field by dotted name (``"dataset.fingerprint"``); None when absent."""
    value: Any = row
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def latest_rows(rows: Iterable[dict[str, Any]], by: tuple[str, ...] = ROW_IDENTITY) -> list[dict[str, Any]]:
    """The last row for each combination of ``by`` fields (dotted names reach into dicts), in order of first
    appearance.

    With the default identity a retried cell replaces its earlier attempts, while a re-configured run (another
    protocol hash, dataset, training set or detector parameters) gets cells of its own and never overwrites or
    mixes with the old ones; readers choose which configuration to show.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        chosen[json.dumps([row_field(row, k) for k in by], sort_keys=True, default=str)] = row
    return list(chosen.values())


__all__ = [
    "ERROR",
    "OK",
    "RESULTS_FILE",
    "ROW_IDENTITY",
    "SKIPPED",
    "ResultStore",
    "Sidecar",
    "clean_json",
    "latest_rows",
    "row_field",
]
