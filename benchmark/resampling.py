"""The arithmetic behind the bootstrap intervals of :mod:`dfzoo.benchmark.metrics`: a resample is a weighting
(how many times each image counts), AUC and AP are computed for many weightings at once, images shared by
several test sets are pooled so that a replicate draws them once for all, and replicates come in blocks of
bounded size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95
CHUNK_CELLS = 4_000_000  # bootstrap works on blocks of replicates of at most this many matrix cells


def replicate_blocks(n_bootstrap: int, cells_per_replicate: int) -> Iterator[int]:
    """The sizes of the blocks of replicates, each of at most :data:`CHUNK_CELLS` weights (at least one)."""
    block = max(1, CHUNK_CELLS // cells_per_replicate)
    for start in range(0, n_bootstrap, block):
        yield min(block, n_bootstrap - start)


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """``[low, high]`` percentile interval of bootstrap replicates (NaN when there are none)."""
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0:
        return [math.nan, math.nan]
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return [float(low), float(high)]


def weighted_auc_ap(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and AP of one test set under many weightings at once.

    ``weights`` is ``[R, n]`` (how many times each sample counts in each of R replicates; a bootstrap
    resample is such a weighting). Ties count one half for AUC and form one operating point for AP, which
    matches scikit-learn's ``roc_auc_score`` / ``average_precision_score`` with ``sample_weight``.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    levels, level_of = np.unique(scores, return_inverse=True)
    positive_weight, negative_weight = (
        per_level(weights[:, labels == value], level_of[labels == value], levels.size) for value in (1, 0)
    )
    total_positive = positive_weight.sum(axis=1)
    total_negative = negative_weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.cumsum(negative_weight, axis=1) - negative_weight  # negatives strictly below each level
        auc = (positive_weight * (below + 0.5 * negative_weight)).sum(axis=1) / (total_positive * total_negative)
        true_pos = np.cumsum(positive_weight[:, ::-1], axis=1)  # thresholds from the highest score down
        false_pos = np.cumsum(negative_weight[:, ::-1], axis=1)
        precision = np.where(true_pos > 0, true_pos / np.maximum(true_pos + false_pos, 1e-300), 0.0)
        ap = (positive_weight[:, ::-1] * precision).sum(axis=1) / total_positive
    return auc, ap


def per_level(weights: np.ndarray, level_of: np.ndarray, n_levels: int) -> np.ndarray:
    """Sum the columns of ``weights`` that share a score level: ``[R, n_class] -> [R, n_levels]``."""
    out = np.zeros((weights.shape[0], n_levels))
    if level_of.size == 0:
        return out
    order = np.argsort(level_of, kind="stable")
    sorted_levels = level_of[order]
    starts = np.flatnonzero(np.r_[True, sorted_levels[1:] != sorted_levels[:-1]])
    out[:, sorted_levels[starts]] = np.add.reduceat(weights[:, order], starts, axis=1)
    return out


def resample_counts(rng: np.random.Generator, replicates: int, size: int) -> np.ndarray:
    """``[replicates, size]`` multiplicities of a with-replacement resample of ``size`` items."""
    draws = rng.integers(0, size, size=(replicates, size))
    flat = (draws + np.arange(replicates)[:, None] * size).ravel()
    return np.bincount(flat, minlength=replicates * size).reshape(replicates, size).astype(np.float64)


def shared_units(
    sets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], label: int
) -> list[tuple[list[tuple[int, np.ndarray, np.ndarray]], int]]:
    """Group the sets whose images of class ``label`` overlap (by id) into pools resampled together.

    Returns ``[(members, pool_size)]``; each member ``(set index, positions in the set, index in the pool)``
    says which pool draw weighs each of the set's images of that class.
    """
    parent = list(range(len(sets)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_set: dict[Any, int] = {}
    for index, (labels, _, names) in enumerate(sets):
        for name in names[labels == label]:
            parent[root(index)] = root(first_set.setdefault(name, index))
    groups: dict[int, list[int]] = {}
    for index in range(len(sets)):
        groups.setdefault(root(index), []).append(index)
    out = []
    for members in groups.values():
        pool = {
            name: i
            for i, name in enumerate(
                dict.fromkeys(name for index in members for name in sets[index][2][sets[index][0] == label])
            )
        }
        entries = []
        for index in members:
            labels, _, names = sets[index]
            positions = np.flatnonzero(labels == label)
            entries.append((index, positions, np.array([pool[name] for name in names[positions]], dtype=np.int64)))
        out.append((entries, len(pool)))
    return out
