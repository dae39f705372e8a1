"""The one cached-computation engine: per-image rows computed once, kept on disk, shared by every run.

:func:`compute_cached` turns ``compute(batch) -> rows`` over prepared images into a per-sample result,
reading and filling a :class:`FeatureCache` keyed by what the computation is (``key``) and each sample's
content id (its bytes and its view's perturbation). Frozen-backbone features
(:func:`dfzoo.features.extract_features`) and the reconstruction detectors' maps and distances all run
through it, so all get the same batching (:mod:`dfzoo.batching`), the same out-of-memory back-off
(:class:`dfzoo.device.OomBackoff`) and the same cache that holds up under concurrent writers.

The cache is one SQLite file per key under ``$DFZOO_CACHE_DIR/features``: many processes may read and write
it at once. Every statement waits on a busy lock (:data:`BUSY_TIMEOUT_MS`) and is retried with back-off while
SQLite still says the database is locked or busy, up to :data:`LOCK_PATIENCE_S`. The journal is WAL (readers
never wait for a writer), which needs every process on one host; for a cache folder on a network filesystem
shared by several nodes set ``$DFZOO_CACHE_JOURNAL=delete`` (SQLite's rollback journal, which relies on the
filesystem's POSIX locks instead of shared memory).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .batching import DecodePlan, iter_batches
from .data.sample import Sample, content_id
from .paths import features_dir

log = logging.getLogger(__name__)
BUSY_TIMEOUT_MS = 5_000  # SQLite waits this long on a lock before a statement reports "database is locked"
LOCK_PATIENCE_S = 600.0  # ...and we retry such statements for this long before giving up
SQL_CHUNK = 500  # ids per SELECT (SQLite limits the number of bound parameters)
JOURNAL_ENV = "DFZOO_CACHE_JOURNAL"
JOURNAL_MODES = ("wal", "delete", "truncate")  # wal: one host; delete/truncate: also on a network filesystem
T = TypeVar("T")


def _contended(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class FeatureCache:
    """content id -> vector, in one SQLite file per computation key (see the module docstring).

    SQLite gives atomic commits (an interrupted run keeps every finished batch), concurrent readers beside a
    writer (WAL), and one writer at a time across processes; contention is waited out, never an error.
    """

    def __init__(
        self, key: str, root: Path | None = None, *, busy_ms: int = BUSY_TIMEOUT_MS, patience: float = LOCK_PATIENCE_S
    ) -> None:
        self.key = key
        self.path = (root or features_dir()) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.patience = patience
        journal = os.environ.get(JOURNAL_ENV, "wal").strip().lower() or "wal"
        if journal not in JOURNAL_MODES:
            raise ValueError(f"${JOURNAL_ENV} must be one of {', '.join(JOURNAL_MODES)}, got {journal!r}")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=busy_ms / 1000, check_same_thread=False)
        for statement in (
            f"PRAGMA busy_timeout={int(busy_ms)}",
            f"PRAGMA journal_mode={journal}",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
            "CREATE TABLE IF NOT EXISTS features (content TEXT PRIMARY KEY, vector BLOB)",
        ):
            self._retry(partial(self._db.execute, statement))
        self._retry(partial(self._commit, "INSERT OR IGNORE INTO meta VALUES ('key', ?)", [(key,)]))

    def _retry(self, action: Callable[[], T]) -> T:
        """``action()``, retried with jittered back-off while the database is locked or busy."""
        deadline = time.monotonic() + self.patience
        delay = 0.01
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                if not _contended(error) or time.monotonic() > deadline:
                    raise
                with contextlib.suppress(sqlite3.Error):
                    self._db.rollback()
                log.debug("%s: %s; retrying", self.path.name, error)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)

    def _commit(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._db.executemany(sql, rows)
        self._db.commit()

    def _select(self, query: str, values: Sequence[Any]) -> list[Any]:
        return self._db.execute(query, values).fetchall()

    def get_many(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(unique), SQL_CHUNK):
                chunk = unique[start : start + SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT content, vector FROM features WHERE content IN ({marks})"
                for content, blob in self._retry(partial(self._select, query, chunk)):
                    found[content] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        with self._lock:
            self._retry(partial(self._commit, "INSERT OR REPLACE INTO features VALUES (?, ?)", rows))

    def __len__(self) -> int:
        with self._lock:
            return self._retry(partial(self._select, "SELECT COUNT(*) FROM features", ()))[0][0]

    def close(self) -> None:
        self._db.close()


@dataclass
class Features:
    """Rows for a sequence of samples; rows of undecodable samples are NaN (zeros for uint8) and listed in
    ``errors``; ``cached`` counts the rows read from the cache."""

    vectors: np.ndarray
    errors: dict[int, str]
    cached: int = 0

    @property
    def ok(self) -> np.ndarray:
        mask = np.ones(len(self.vectors), dtype=bool)
        mask[list(self.errors)] = False
        return mask


def content_ids(samples: Sequence[Sample], errors: dict[int, str]) -> list[str | None]:
    """Each sample's content id (the cache key); ``None`` for unreadable files, whose reason goes to ``errors``."""
    ids: list[str | None] = []
    for position, sample in enumerate(samples):
        try:
            ids.append(content_id(sample))
        except OSError as error:
            ids.append(None)
            errors[position] = f"unreadable ({error.strerror or error})"
    return ids


STORED_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))


def compute_cached(
    samples: Sequence[Sample],
    *,
    key: str,
    dim: int,
    prepare: Callable[[Sample], np.ndarray],
    compute: Callable[[np.ndarray], Any],
    batch_size: int,
    dtype: Any = np.float32,
    cache: bool | FeatureCache = True,
    device: Any = None,
    progress: bool = False,
    desc: str = "",
) -> Features:
    """``compute(batch) -> [B, dim]`` for every sample, reading and filling the cache of ``key``.

    ``prepare`` decodes one sample (with its view's perturbation) to an array; batches group arrays of one
    shape. ``cache`` is True (the cache file of ``key``), False (compute everything, store nothing) or an
    open :class:`FeatureCache`. ``device`` is where ``compute`` runs: beside a GPU, decoding moves to
    worker processes with pinned memory (:meth:`DecodePlan.for_device`). A batch that runs the device out
    of memory is split, and later batches stay at the size that fit.

    ``dtype`` is how rows are kept and stored: ``np.uint8`` rows (integers in [0, 255]) are returned as a
    uint8 array and stored as their raw bytes (4 per float32 slot, so ``dim`` must be a multiple of 4),
    coming back bit-identical; their cache key says so. Only the image content and ``key`` reach a stored
    row: nothing about a sample's label or file format does.
    """
    from tqdm.auto import tqdm

    from .device import OomBackoff

    dtype = np.dtype(dtype)
    if dtype not in STORED_DTYPES:
        raise ValueError(f"unsupported cache dtype {dtype}; use one of {', '.join(map(str, STORED_DTYPES))}")
    if dtype == np.uint8 and dim % 4:
        raise ValueError(f"uint8 rows are cached 4 bytes per slot; dim {dim} is not a multiple of 4")
    fill = 0 if dtype == np.uint8 else np.nan
    out = np.full((len(samples), dim), fill, dtype=dtype)
    errors: dict[int, str] = {}
    ids = content_ids(samples, errors)
    own = not isinstance(cache, FeatureCache)
    if isinstance(cache, FeatureCache):
        store: FeatureCache | None = cache
    else:
        store = FeatureCache(key if dtype == np.float32 else f"{key}|store={dtype.name}") if cache else None
    try:
        found = store.get_many([i for i in ids if i is not None]) if store is not None else {}
        todo = []
        for position, cid in enumerate(ids):
            if cid is not None and cid in found:
                out[position] = _decode_row(found[cid], dtype)
            elif cid is not None:
                todo.append(position)
        cached = len(samples) - len(todo) - len(errors)
        run = OomBackoff(compute)
        bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress or not todo, leave=False)
        for batch in iter_batches(samples, prepare, batch_size, todo, plan=DecodePlan.for_device(device)):
            errors.update(batch.errors)
            if batch.indices:
                rows = run(batch.array)
                if rows.shape != (len(batch.indices), dim):
                    raise ValueError(f"computation returned {rows.shape}, expected {(len(batch.indices), dim)}")
                encoded = [_encode_row(row, dtype) for row in rows]
                out[batch.indices] = [_decode_row(e, dtype) for e in encoded]
                if store is not None:
                    store.put_many({ids[p]: e for p, e in zip(batch.indices, encoded, strict=True)})  # type: ignore[misc]
            bar.update(len(batch.indices) + len(batch.errors))
        bar.close()
    finally:
        if own and store is not None:
            store.close()
    return Features(out, errors, cached)


def _encode_row(row: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        values = np.asarray(row)
        if values.min() < 0 or values.max() > 255 or not np.array_equal(values, np.round(values)):
            raise ValueError("a uint8-stored row must hold integers in [0, 255]")
        return np.ascontiguousarray(values.astype(np.uint8)).view(np.float32)
    return np.asarray(row, dtype=np.float32)


def _decode_row(stored: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.ascontiguousarray(stored).view(np.uint8)
    return stored


__all__ = ["BUSY_TIMEOUT_MS", "LOCK_PATIENCE_S", "FeatureCache", "Features", "compute_cached", "content_ids"]
