"""Scores to numbers: the only module of dfzoo that turns detector scores into metrics.

Conventions (recorded in every result row through :func:`threshold_policy`):

- a score at or above the threshold means "fake" (label 1), the same rule as a ROC curve's operating points;
- NaN scores (undecodable images) are dropped before any metric and counted in ``n_nan``;
- ``tpr_at_1fpr`` / ``tpr_at_5fpr`` are the best true-positive rate among operating points whose false-positive
  rate does not exceed 1 % / 5 % (no interpolation: a threshold that really exists achieves it);
- ``eer`` is where the false-negative and false-positive rates cross, interpolated linearly on the ROC curve;
- ``best_acc`` is the oracle accuracy at the best threshold on the test set itself (an upper bound, not a
  deployable number);
- bootstrap intervals for AUC and AP resample reals and fakes separately (stratified, so every replicate has
  both classes), with a seeded generator, percentile method.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.5
DEFAULT_BOOTSTRAP = 1000
CONFIDENCE = 0.95
FPR_POINTS = {"tpr_at_1fpr": 0.01, "tpr_at_5fpr": 0.05}
_CHUNK_CELLS = 4_000_000  # bootstrap works on blocks of replicates of at most this many matrix cells

# Metrics that are averaged across test generators (counts are summed instead).
SCALAR_METRICS = ("acc", "real_acc", "fake_acc", "best_acc", "ap", "auc", "eer", "tpr_at_1fpr", "tpr_at_5fpr")
COUNT_METRICS = ("n", "n_real", "n_fake", "n_nan")


def threshold_policy(describe: Mapping[str, Any] | None) -> tuple[float, str]:
    """The decision threshold for a detector and how it was chosen.

    A detector's ``describe()`` may give ``"threshold"`` (e.g. a calibrated probe's 0.0 on logits); otherwise
    the fixed default 0.5 applies. Returns ``(threshold, policy)`` with policy ``"detector"`` or ``"fixed"``.
    """
    value = (describe or {}).get("threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value), "detector"
    return DEFAULT_THRESHOLD, "fixed"


def drop_nan(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, scores, kept)`` without the NaN scores; ``kept`` is the boolean mask over the input."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    kept = ~np.isnan(scores)
    return labels[kept], scores[kept], kept


def _both_classes(labels: np.ndarray) -> bool:
    return bool(labels.size) and 0 < int(labels.sum()) < labels.size


def roc_points(labels: Any, scores: Any, *, full: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the ROC curve (NaN scores dropped); empty arrays with a single class.

    ``full=True`` keeps every threshold (needed for exact operating points); plots use the reduced curve.
    """
    from sklearn.metrics import roc_curve
    labels, scores, _ = drop_nan(labels, scores)
    if not _both_classes(labels):
        empty = np.empty(0)
        return empty, empty, empty
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=not full)
    return fpr, tpr, thresholds


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where FNR = 1 - TPR meets FPR along the ROC curve (linear interpolation between operating points)."""
    if fpr.size == 0:
        return math.nan
    gap = (1.0 - tpr) - fpr  # decreases from 1 (nothing flagged) to -1 (everything flagged)
    crossing = int(np.argmax(gap <= 0))
    if gap[crossing] == 0 or crossing == 0:
        return float(fpr[crossing])
    t = gap[crossing - 1] / (gap[crossing - 1] - gap[crossing])
    return float(fpr[crossing - 1] + t * (fpr[crossing] - fpr[crossing - 1]))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The best TPR among operating points with FPR <= ``target`` (a threshold that exists achieves it)."""
    if fpr.size == 0:
        return math.nan
    allowed = fpr <= target + 1e-12
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def binary_metrics(labels: Any, scores: Any, threshold: float = DEFAULT_THRESHOLD, *,
                   n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                   confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Every metric of one test set (see the module docstring). Undefined values are NaN.

    Returns counts (``n``, ``n_real``, ``n_fake``, ``n_nan``), ``acc``/``real_acc``/``fake_acc`` at
    ``threshold``, ``best_acc`` and ``best_threshold``, ``ap``, ``auc``, ``eer``, ``tpr_at_1fpr``,
    ``tpr_at_5fpr`` and, when ``n_bootstrap > 0`` and both classes are present, ``auc_ci`` and ``ap_ci``
    as ``[low, high]``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score
    raw = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels, scores, kept = drop_nan(labels, raw)
    real, fake = scores[labels == 0], scores[labels == 1]
    out: dict[str, Any] = {"n": int(labels.size), "n_real": int(real.size), "n_fake": int(fake.size),
                           "n_nan": int((~kept).sum()), "threshold": float(threshold)}
    out["real_acc"] = float(np.mean(real < threshold)) if real.size else math.nan
    out["fake_acc"] = float(np.mean(fake >= threshold)) if fake.size else math.nan
    out["acc"] = float(np.mean((scores >= threshold) == (labels == 1))) if labels.size else math.nan
    nan_keys = ("best_acc", "best_threshold", "ap", "auc", "eer", *FPR_POINTS)
    if not _both_classes(labels):
        out.update({key: math.nan for key in nan_keys})
        return out
    fpr, tpr, thresholds = roc_points(labels, scores, full=True)
    accuracy = (tpr * fake.size + (1.0 - fpr) * real.size) / labels.size
    best = int(np.argmax(accuracy))
    out["best_acc"] = float(accuracy[best])
    out["best_threshold"] = float(thresholds[best]) if math.isfinite(thresholds[best]) else math.nan
    out["ap"] = float(average_precision_score(labels, scores))
    out["auc"] = float(roc_auc_score(labels, scores))
    out["eer"] = equal_error_rate(fpr, tpr)
    for key, target in FPR_POINTS.items():
        out[key] = tpr_at_fpr(fpr, tpr, target)
    if n_bootstrap > 0:
        auc_reps, ap_reps = bootstrap_auc_ap(labels, scores, n_bootstrap, seed)
        out["auc_ci"] = percentile_interval(auc_reps, confidence)
        out["ap_ci"] = percentile_interval(ap_reps, confidence)
        out["bootstrap"] = {"n": int(n_bootstrap), "seed": int(seed), "confidence": confidence,
                            "method": "stratified percentile"}
    return out


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """``[low, high]`` percentile interval of bootstrap replicates (NaN when there are none)."""
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0:
        return [math.nan, math.nan]
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return [float(low), float(high)]


# -- bootstrap -------------------------------------------------------------------------------------------
def weighted_auc_ap(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and AP of one test set under many weightings at once.

    ``weights`` is ``[R, n]`` (how many times each sample counts in each of R replicates; a bootstrap
    resample is such a weighting). Ties count one half for AUC and form one operating point for AP, which
    matches scikit-learn's ``roc_auc_score`` / ``average_precision_score`` with ``sample_weight``.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    levels, level_of = np.unique(scores, return_inverse=True)
    positive_weight, negative_weight = (_per_level(weights[:, labels == value], level_of[labels == value],
                                                   levels.size) for value in (1, 0))
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


def _per_level(weights: np.ndarray, level_of: np.ndarray, n_levels: int) -> np.ndarray:
    """Sum the columns of ``weights`` that share a score level: ``[R, n_class] -> [R, n_levels]``."""
    out = np.zeros((weights.shape[0], n_levels))
    if level_of.size == 0:
        return out
    order = np.argsort(level_of, kind="stable")
    sorted_levels = level_of[order]
    starts = np.flatnonzero(np.r_[True, sorted_levels[1:] != sorted_levels[:-1]])
    out[:, sorted_levels[starts]] = np.add.reduceat(weights[:, order], starts, axis=1)
    return out


def _resample_counts(rng: np.random.Generator, replicates: int, size: int) -> np.ndarray:
    """``[replicates, size]`` multiplicities of a with-replacement resample of ``size`` items."""
    draws = rng.integers(0, size, size=(replicates, size))
    flat = (draws + np.arange(replicates)[:, None] * size).ravel()
    return np.bincount(flat, minlength=replicates * size).reshape(replicates, size).astype(np.float64)


def bootstrap_auc_ap(labels: Any, scores: Any, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap replicates of (AUC, AP): reals and fakes are resampled separately.

    Vectorised: each block of replicates is a weight matrix evaluated by :func:`weighted_auc_ap`.
    """
    labels, scores, _ = drop_nan(labels, scores)
    if not _both_classes(labels) or n_bootstrap <= 0:
        return np.full(max(n_bootstrap, 0), np.nan), np.full(max(n_bootstrap, 0), np.nan)
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    block = max(1, _CHUNK_CELLS // labels.size)
    aucs, aps = [], []
    for start in range(0, n_bootstrap, block):
        count = min(block, n_bootstrap - start)
        weights = np.zeros((count, labels.size))
        weights[:, positives] = _resample_counts(rng, count, positives.size)
        weights[:, negatives] = _resample_counts(rng, count, negatives.size)
        auc, ap = weighted_auc_ap(labels, scores, weights)
        aucs.append(auc)
        aps.append(ap)
    return np.concatenate(aucs), np.concatenate(aps)


def mean_intervals(test_sets: Sequence[tuple[Any, Any]], n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                   confidence: float = CONFIDENCE) -> dict[str, list[float]]:
    """Bootstrap intervals of the *mean* AUC and AP over several test sets (e.g. test generators).

    Each set is resampled independently (same number of replicates); replicate r of the mean is the mean of
    the sets' replicate r. Sets with a single class are left out.
    """
    auc_reps, ap_reps = [], []
    for index, (labels, scores) in enumerate(test_sets):
        labels, scores, _ = drop_nan(labels, scores)
        if _both_classes(labels):
            auc, ap = bootstrap_auc_ap(labels, scores, n_bootstrap, seed + index)
            auc_reps.append(auc)
            ap_reps.append(ap)
    if not auc_reps:
        return {"auc_ci": [math.nan, math.nan], "ap_ci": [math.nan, math.nan]}
    return {"auc_ci": percentile_interval(np.mean(auc_reps, axis=0), confidence),
            "ap_ci": percentile_interval(np.mean(ap_reps, axis=0), confidence)}


# -- averaging -------------------------------------------------------------------------------------------
def average_metrics(per_set: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Average the scalar metrics of several test sets (NaN and missing values ignored); sum the counts.

    ``n_sets`` says how many sets were averaged; a metric no set defines is NaN.
    """
    out: dict[str, Any] = {"n_sets": len(per_set)}
    for key in SCALAR_METRICS:
        values = [_number(m.get(key)) for m in per_set]
        finite = [v for v in values if math.isfinite(v)]
        out[key] = float(np.mean(finite)) if finite else math.nan
    for key in COUNT_METRICS:
        out[key] = int(sum(int(m.get(key) or 0) for m in per_set))
    return out


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return math.nan
    return float(value)


__all__ = [
    "CONFIDENCE", "DEFAULT_BOOTSTRAP", "DEFAULT_THRESHOLD", "FPR_POINTS", "SCALAR_METRICS", "average_metrics",
    "binary_metrics", "bootstrap_auc_ap", "drop_nan", "equal_error_rate", "mean_intervals",
    "percentile_interval", "roc_points", "threshold_policy", "tpr_at_fpr", "weighted_auc_ap",
]
