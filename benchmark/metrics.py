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
  both classes), with a seeded generator, percentile method (the arithmetic is in
  :mod:`dfzoo.benchmark.resampling`);
- a mean over test sets is defined only when every set defines the metric (a missing or NaN set makes the mean
  NaN, never a mean over the sets that worked); its interval resamples an image shared by several test sets
  (the shared reals) once per replicate for all of them (:func:`mean_intervals`);
- accuracies at a threshold mean something only under the policies in :data:`MEANINGFUL_THRESHOLD_POLICIES`:
  ``"detector"`` (the detector states its threshold) and ``"train_real_quantile"`` (the threshold puts a fixed
  false-positive rate on the training reals, :func:`threshold_from_reals`). Under ``"fixed"`` (0.5 on scores
  that may not be probabilities) they are computed but not to be shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .resampling import (
    CONFIDENCE,
    percentile_interval,
    replicate_blocks,
    resample_counts,
    shared_units,
    weighted_auc_ap,
)

DEFAULT_THRESHOLD = 0.5
DEFAULT_BOOTSTRAP = 1000
FPR_POINTS = {"tpr_at_1fpr": 0.01, "tpr_at_5fpr": 0.05}

# Metrics that are averaged across test generators (counts are summed instead).
SCALAR_METRICS = ("acc", "real_acc", "fake_acc", "best_acc", "ap", "auc", "eer", "tpr_at_1fpr", "tpr_at_5fpr")
COUNT_METRICS = ("n", "n_real", "n_fake", "n_nan")
THRESHOLD_METRICS = ("acc", "real_acc", "fake_acc")  # the metrics that depend on the decision threshold
# Threshold policies (recorded in every row as ``threshold_policy``).
DETECTOR_POLICY, TRAIN_REAL_QUANTILE_POLICY, FIXED_POLICY = "detector", "train_real_quantile", "fixed"
MEANINGFUL_THRESHOLD_POLICIES = (DETECTOR_POLICY, TRAIN_REAL_QUANTILE_POLICY)
DEFAULT_THRESHOLD_FPR = 0.05


def threshold_policy(describe: Mapping[str, Any] | None) -> tuple[float, str]:
    """The decision threshold for a detector and how it was chosen.

    A detector's ``describe()`` may give ``"threshold"`` (e.g. a calibrated probe's 0.0 on logits): policy
    ``"detector"``. Otherwise the fixed default 0.5 applies: policy ``"fixed"``, whose accuracies are not to be
    shown (the scores need not be probabilities); a harness that scores the training reals replaces it with
    :func:`threshold_from_reals` and policy ``"train_real_quantile"``.
    """
    value = (describe or {}).get("threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value), DETECTOR_POLICY
    return DEFAULT_THRESHOLD, FIXED_POLICY


def threshold_from_reals(real_scores: Any, fpr: float = DEFAULT_THRESHOLD_FPR) -> float:
    """The smallest threshold whose false-positive rate on ``real_scores`` is at most ``fpr``.

    With the rule "a score at or above the threshold means fake", at most ``floor(fpr * n)`` of the n reals may
    reach the threshold, so it is the next float above the ``floor(fpr * n) + 1``-th highest real score. NaN
    scores are ignored; no finite real score or ``fpr`` outside [0, 1) raises ``ValueError``.
    """
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr!r}")
    reals = np.asarray(real_scores, dtype=np.float64).reshape(-1)
    reals = np.sort(reals[~np.isnan(reals)])[::-1]
    if reals.size == 0:
        raise ValueError("threshold_from_reals needs at least one real score that is not NaN")
    allowed = math.floor(fpr * reals.size + 1e-9)  # reals allowed at or above the threshold
    if reals[allowed] == np.inf:
        raise ValueError(f"no threshold keeps the false-positive rate at {fpr}: too many real scores are +inf")
    return float(np.nextafter(reals[allowed], np.inf))


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


def binary_metrics(
    labels: Any,
    scores: Any,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
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
    out: dict[str, Any] = {
        "n": int(labels.size),
        "n_real": int(real.size),
        "n_fake": int(fake.size),
        "n_nan": int((~kept).sum()),
        "threshold": float(threshold),
    }
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
        out["bootstrap"] = {
            "n": int(n_bootstrap),
            "seed": int(seed),
            "confidence": confidence,
            "method": "stratified percentile",
        }
    return out


# -- bootstrap -------------------------------------------------------------------------------------------
def bootstrap_auc_ap(
    labels: Any, scores: Any, n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap replicates of (AUC, AP): reals and fakes are resampled separately.

    Vectorised: each block of replicates is a weight matrix evaluated by :func:`weighted_auc_ap`.
    """
    labels, scores, _ = drop_nan(labels, scores)
    if not _both_classes(labels) or n_bootstrap <= 0:
        return np.full(max(n_bootstrap, 0), np.nan), np.full(max(n_bootstrap, 0), np.nan)
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    aucs, aps = [], []
    for count in replicate_blocks(n_bootstrap, labels.size):
        weights = np.zeros((count, labels.size))
        weights[:, positives] = resample_counts(rng, count, positives.size)
        weights[:, negatives] = resample_counts(rng, count, negatives.size)
        auc, ap = weighted_auc_ap(labels, scores, weights)
        aucs.append(auc)
        aps.append(ap)
    return np.concatenate(aucs), np.concatenate(aps)


def mean_intervals(
    test_sets: Sequence[tuple[Any, Any]],
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    ids: Sequence[Any] | None = None,
) -> dict[str, list[float]]:
    """Bootstrap intervals of the *mean* AUC and AP over several test sets (e.g. test generators).

    ``ids`` gives, per set, one identifier per image (same length as its labels). An image that appears in
    several sets (the reals every test generator shares) is one unit: each replicate draws it the same number
    of times in every set it belongs to, so the sets' replicates are as correlated as the sets are. Images are
    resampled per class; sets whose images of a class are the same pool get one stratified resample of that
    pool per replicate, disjoint pools are resampled independently. Without ``ids`` every image is distinct.
    Replicate r of the mean is the mean of the sets' replicate r.

    The mean is undefined, and so are its intervals (NaN), when a set lacks a class or there are no sets.
    """
    empty = {"auc_ci": [math.nan, math.nan], "ap_ci": [math.nan, math.nan]}
    if ids is not None and len(ids) != len(test_sets):
        raise ValueError(f"{len(test_sets)} test sets but ids for {len(ids)}")
    sets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for index, (labels, scores) in enumerate(test_sets):
        labels, scores, kept = drop_nan(labels, scores)
        if ids is None:
            names = np.array([f"{index}:{position}" for position in range(kept.size)], dtype=object)
        else:
            names = np.asarray(ids[index], dtype=object).reshape(-1)
            if names.size != kept.size:
                raise ValueError(f"test set {index}: {kept.size} labels but {names.size} ids")
        if not _both_classes(labels):
            return empty
        sets.append((labels, scores, names[kept]))
    if not sets or n_bootstrap <= 0:
        return empty
    units = [shared_units(sets, value) for value in (1, 0)]
    rng = np.random.default_rng(seed)
    auc_blocks, ap_blocks = [], []
    for count in replicate_blocks(n_bootstrap, sum(labels.size for labels, _, _ in sets)):
        weights = [np.zeros((count, labels.size)) for labels, _, _ in sets]
        for groups in units:
            for members, pool_size in groups:
                counts = resample_counts(rng, count, pool_size)
                for set_index, positions, pool_index in members:
                    weights[set_index][:, positions] = counts[:, pool_index]
        per_set = [weighted_auc_ap(labels, scores, w) for (labels, scores, _), w in zip(sets, weights, strict=True)]
        auc_blocks.append(np.mean([auc for auc, _ in per_set], axis=0))
        ap_blocks.append(np.mean([ap for _, ap in per_set], axis=0))
    return {
        "auc_ci": percentile_interval(np.concatenate(auc_blocks), confidence),
        "ap_ci": percentile_interval(np.concatenate(ap_blocks), confidence),
    }


# -- averaging -------------------------------------------------------------------------------------------
def average_metrics(per_set: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Average the scalar metrics of several test sets; sum the counts of those present.

    ``None`` stands for a set that has no result (an error or skipped row, or no row at all). A metric's mean
    is defined only when every set has a finite value for it; otherwise it is NaN (a mean over the sets that
    worked would flatter a detector that fails on the hard ones). ``n_sets`` says how many sets there are and
    ``defined`` how many of them define each metric.
    """
    present = [m for m in per_set if m is not None]
    out: dict[str, Any] = {"n_sets": len(per_set), "defined": {}}
    for key in SCALAR_METRICS:
        finite = [v for v in (_number(m.get(key)) for m in present) if math.isfinite(v)]
        out["defined"][key] = len(finite)
        out[key] = float(np.mean(finite)) if finite and len(finite) == len(per_set) else math.nan
    for key in COUNT_METRICS:
        out[key] = int(sum(int(m.get(key) or 0) for m in present))
    return out


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return math.nan
    return float(value)


__all__ = [
    "CONFIDENCE",
    "COUNT_METRICS",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_THRESHOLD",
    "DEFAULT_THRESHOLD_FPR",
    "DETECTOR_POLICY",
    "FIXED_POLICY",
    "FPR_POINTS",
    "MEANINGFUL_THRESHOLD_POLICIES",
    "SCALAR_METRICS",
    "THRESHOLD_METRICS",
    "TRAIN_REAL_QUANTILE_POLICY",
    "average_metrics",
    "binary_metrics",
    "bootstrap_auc_ap",
    "drop_nan",
    "equal_error_rate",
    "mean_intervals",
    "percentile_interval",
    "roc_points",
    "threshold_from_reals",
    "threshold_policy",
    "tpr_at_fpr",
    "weighted_auc_ap",
]
