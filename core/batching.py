"""Samples decoded into batches beside the compute: the one batching path of dfzoo.

Decoding (file read, perturbation, preprocessing) runs ahead of the consumer, either on a thread pool (the
CPU default: numpy and PIL release the GIL for most of the work) or, beside a GPU, in torch ``DataLoader``
worker processes whose batches arrive in page-locked ("pinned") memory, so the host-to-GPU copy can run
asynchronously. Each batch holds images of one shape: after a fixed-size preprocessing every batch is full,
and images kept at native sizes (the reconstruction detectors) are grouped by shape.

:class:`DecodePlan` says how: :meth:`DecodePlan.for_device` picks processes and pinned memory on CUDA and
reads ``$DFZOO_DECODE_WORKERS`` (a count; 0 decodes in the calling thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data.decode import ImageDecodeError
from .data.sample import Sample

DECODE_WORKERS_ENV = "DFZOO_DECODE_WORKERS"
CPU_DECODE_THREADS = 2  # decoding threads beside CPU compute (more only compete with it for the cores)
MAX_GPU_DECODE_WORKERS = 16  # decode processes beside a GPU: all cores but one, at most this many
BUFFERED_BATCHES = 4  # images of unfinished shape groups kept back at most, in batches, before partial flushes

Prepare = Callable[[Sample], np.ndarray]


@dataclass
class Batch:
    """Rows of one shape: ``array[i]`` is the prepared sample at position ``indices[i]`` of the input."""

    indices: list[int]
    array: np.ndarray  # [len(indices), ...]
    errors: dict[int, str] = field(default_factory=dict)  # position -> reason, for undecodable samples


@dataclass(frozen=True)
class DecodePlan:
    """How samples are decoded: ``workers`` threads or (``processes``) DataLoader worker processes, and
    whether batches arrive in pinned memory (``pin_memory``, for asynchronous copies to a GPU)."""

    workers: int = CPU_DECODE_THREADS
    processes: bool = False
    pin_memory: bool = False

    @classmethod
    def for_device(cls, device: Any = None) -> DecodePlan:
        """Threads beside the CPU; beside a CUDA device, worker processes (all cores but one) and pinned
        memory. ``$DFZOO_DECODE_WORKERS`` overrides the count (0: decode in the calling thread)."""
        on_cuda = str(device or "").startswith("cuda")
        text = os.environ.get(DECODE_WORKERS_ENV, "").strip()
        if text:
            if not text.isdigit():
                raise ValueError(f"${DECODE_WORKERS_ENV} must be a count of workers (0 or more), got {text!r}")
            workers = int(text)
        elif on_cuda:
            workers = max(1, min(MAX_GPU_DECODE_WORKERS, _usable_cpus() - 1))
        else:
            workers = CPU_DECODE_THREADS
        return cls(workers=workers, processes=on_cuda and workers > 0, pin_memory=on_cuda)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class _Decoded:
    """One decoded chunk: the arrays of its decodable positions (stacked when they share a shape)."""

    positions: list[int]
    arrays: list[np.ndarray]
    errors: dict[int, str]
    stacked: Any = None  # an array (or tensor, from worker processes) of every row when shapes agree

    def pin_memory(self) -> _Decoded:
        """Page-lock the stacked rows (torch's DataLoader calls this in its pin-memory thread)."""
        if self.stacked is not None:
            self.stacked = self.stacked.pin_memory()
        return self


def _decode_chunk(samples: Sequence[Sample], prepare: Prepare, chunk: Sequence[int], stack: bool) -> _Decoded:
    positions, arrays, errors = [], [], {}
    for position in chunk:
        try:
            arrays.append(prepare(samples[position]))
            positions.append(position)
        except ImageDecodeError as error:
            errors[position] = error.reason
    stacked = None
    if stack and arrays and len({a.shape for a in arrays}) == 1:
        stacked = np.stack(arrays)
        arrays = []
    return _Decoded(positions, arrays, errors, stacked)


def _decode_threads(
    samples: Sequence[Sample], prepare: Prepare, chunks: list[list[int]], workers: int
) -> Iterator[_Decoded]:
    """Chunks decoded on a thread pool, ``workers + 1`` in flight, in order."""
    if workers <= 0:
        for chunk in chunks:
            yield _decode_chunk(samples, prepare, chunk, stack=True)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[Future[_Decoded]] = []
        for chunk in chunks:
            pending.append(pool.submit(_decode_chunk, samples, prepare, chunk, True))
            if len(pending) > workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


class _Chunks:
    """A map-style dataset of chunks for torch's DataLoader (decoded in its worker processes)."""

    def __init__(self, samples: Sequence[Sample], prepare: Prepare, chunks: list[list[int]]) -> None:
        self.samples, self.prepare, self.chunks = samples, prepare, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> _Decoded:
        decoded = _decode_chunk(self.samples, self.prepare, self.chunks[index], stack=True)
        if decoded.stacked is not None:
            import torch

            decoded.stacked = torch.from_numpy(decoded.stacked)  # a tensor, so the loader can pin it
        return decoded


def _as_is(decoded: Any) -> Any:
    """The DataLoader's collate step: a decoded chunk is a batch already."""
    return decoded


def _single_thread(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # decode processes must not each claim every core for torch ops


def _decode_processes(
    samples: Sequence[Sample], prepare: Prepare, chunks: list[list[int]], plan: DecodePlan
) -> Iterator[_Decoded]:
    """Chunks decoded in DataLoader worker processes (pinned when the plan says so), in order."""
    from torch.utils.data import DataLoader

    loader: DataLoader[_Decoded] = DataLoader(
        _Chunks(samples, prepare, chunks),  # type: ignore[arg-type]  # a map-style dataset by protocol
        batch_size=None,
        num_workers=plan.workers,
        pin_memory=plan.pin_memory,
        collate_fn=_as_is,
        worker_init_fn=_single_thread,
    )
    for decoded in loader:
        if decoded.stacked is not None:
            decoded.stacked = decoded.stacked.numpy()  # shares the (pinned) buffer: no copy
        yield decoded


def iter_batches(
    samples: Sequence[Sample],
    prepare: Prepare,
    batch_size: int,
    positions: Sequence[int] | None = None,
    workers: int = CPU_DECODE_THREADS,
    plan: DecodePlan | None = None,
) -> Iterator[Batch]:
    """Batches of at most ``batch_size`` same-shape prepared samples (``positions`` only, default all).

    Undecodable samples are reported in :attr:`Batch.errors` of a following batch (possibly one with no
    rows). ``plan`` chooses threads or worker processes (default: ``workers`` threads).
    """
    plan = plan or DecodePlan(workers=workers)
    batch_size = max(1, int(batch_size))
    order = list(range(len(samples))) if positions is None else list(positions)
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if not chunks:
        return
    if plan.processes:
        decoded = _decode_processes(samples, prepare, chunks, plan)
    else:
        decoded = _decode_threads(samples, prepare, chunks, plan.workers)
    yield from _group(decoded, batch_size)


def _group(decoded: Iterable[_Decoded], batch_size: int) -> Iterator[Batch]:
    """Same-shape batches from decoded chunks: a full chunk passes through untouched (staying in pinned
    memory); other rows wait in per-shape groups, flushed when full or when too many images wait."""
    groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    errors: dict[int, str] = {}
    for chunk in decoded:
        errors.update(chunk.errors)
        if chunk.stacked is not None and len(chunk.positions) == batch_size and not groups:
            yield Batch(chunk.positions, chunk.stacked, errors)
            errors = {}
            continue
        rows = chunk.arrays if chunk.stacked is None else list(chunk.stacked)
        for position, array in zip(chunk.positions, rows, strict=True):
            group = groups.setdefault(array.shape, [])
            group.append((position, array))
            if len(group) == batch_size:
                yield _stack(groups.pop(array.shape), errors)
                errors = {}
        if sum(len(g) for g in groups.values()) > BUFFERED_BATCHES * batch_size:
            for shape in list(groups):
                yield _stack(groups.pop(shape), errors)
                errors = {}
    for shape in list(groups):
        yield _stack(groups.pop(shape), errors)
        errors = {}
    if errors:
        yield Batch([], np.empty((0,), dtype=np.float32), errors)


def _stack(rows: list[tuple[int, np.ndarray]], errors: dict[int, str]) -> Batch:
    return Batch([p for p, _ in rows], np.stack([a for _, a in rows]), errors)


__all__ = ["DECODE_WORKERS_ENV", "Batch", "DecodePlan", "iter_batches"]
