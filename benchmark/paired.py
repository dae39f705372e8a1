"""Is a difference in ROC-AUC between two detectors on the same images real? Two paired tests.

- :func:`delong` is DeLong, DeLong & Clarke-Pearson's (1988) test for two correlated ROC AUCs: each AUC is
  a Mann-Whitney statistic, and its structural components (each positive's share of negatives it outscores,
  each negative's share of positives that outscore it) give the covariance of the two AUCs computed on the
  same images; the difference over its standard error is compared with a standard normal. Ties count one
  half, as in the AUC itself.
- :func:`paired_bootstrap` resamples the images (reals and fakes separately, as the leaderboard's intervals
  do) and recomputes both AUCs on each resample with the same weights, giving a percentile interval of the
  difference and a two-sided bootstrap p-value.

Both take ``labels`` (1 fake, 0 real) and the two detectors' scores of the same images in the same order;
NaN scores of either detector drop that image from both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics


@dataclass(frozen=True, kw_only=True)
class PairedTest:
    """What both tests give: the difference B − A of the two AUCs and its two-sided p-value."""

    difference: float
    p_value: float


@dataclass(frozen=True, kw_only=True)
class DeLongResult(PairedTest):
    """DeLong's test: the AUCs of A and B on the same images, the standard error of B − A, and z."""

    auc_a: float
    auc_b: float
    standard_error: float
    z: float


@dataclass(frozen=True, kw_only=True)
class BootstrapResult(PairedTest):
    """The paired bootstrap: the 95% percentile interval of B − A over ``replicates`` resamples."""

    interval: tuple[float, float]
    replicates: int


def paired_arrays(labels: Any, scores_a: Any, scores_b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three arrays as floats/ints with every image that either detector left NaN dropped."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    a = np.asarray(scores_a, dtype=np.float64).reshape(-1)
    b = np.asarray(scores_b, dtype=np.float64).reshape(-1)
    if not labels.size == a.size == b.size:
        raise ValueError(
            f"paired scores need one label and two scores per image, got {labels.size}, {a.size}, {b.size}"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    return labels[keep], a[keep], b[keep]


def midranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1 with ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(auc, v10, v01)``: for each fake the share of reals it outscores (ties one half), for each real the
    share of fakes that outscore it; the AUC is the mean of either."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    m, n = positives.size, negatives.size
    combined = midranks(np.r_[positives, negatives])
    v10 = (combined[:m] - midranks(positives)) / n
    v01 = 1.0 - (combined[m:] - midranks(negatives)) / m
    return float(v10.mean()), v10, v01


def delong(labels: Any, scores_a: Any, scores_b: Any) -> DeLongResult:
    """DeLong's test of AUC(B) − AUC(A) = 0 on the same images (see the module docstring).

    Raises ``ValueError`` when the images do not hold both classes, or a class has a single image (no
    variance can be estimated). Equal scores give a difference of 0 and p = 1.
    """
    labels, a, b = paired_arrays(labels, scores_a, scores_b)
    m, n = int((labels == 1).sum()), int((labels == 0).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least two fakes and two reals, got {m} and {n}")
    auc_a, v10_a, v01_a = structural_components(labels, a)
    auc_b, v10_b, v01_b = structural_components(labels, b)
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    covariance = s10 / m + s01 / n
    variance = float(covariance[0, 0] + covariance[1, 1] - 2.0 * covariance[0, 1])
    difference = auc_b - auc_a
    standard_error = math.sqrt(max(variance, 0.0))
    if variance <= 1e-15 or abs(difference) <= 1e-15:
        z = 0.0 if abs(difference) <= 1e-15 else math.copysign(math.inf, difference)
        p_value = 1.0 if z == 0 else 0.0
    else:
        z = difference / standard_error
        p_value = math.erfc(abs(z) / math.sqrt(2.0))
    return DeLongResult(
        auc_a=auc_a, auc_b=auc_b, difference=difference, standard_error=standard_error, z=z, p_value=p_value
    )


def paired_bootstrap(
    labels: Any, scores_a: Any, scores_b: Any, n_bootstrap: int = metrics.DEFAULT_BOOTSTRAP, seed: int = 0
) -> BootstrapResult:
    """AUC(B) − AUC(A) with a paired, stratified bootstrap over the images (see the module docstring).

    The p-value is twice the smaller share of replicates on either side of zero (at most 1).
    """
    labels, a, b = paired_arrays(labels, scores_a, scores_b)
    if (labels == 1).sum() == 0 or (labels == 0).sum() == 0:
        raise ValueError("a paired bootstrap of AUC needs both fakes and reals")
    if n_bootstrap <= 0:
        raise ValueError(f"n_bootstrap must be positive, got {n_bootstrap}")
    full = np.ones((1, labels.size))
    difference = float(metrics.weighted_auc_ap(labels, b, full)[0][0] - metrics.weighted_auc_ap(labels, a, full)[0][0])
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_bootstrap, labels.size))
    for value in (0, 1):
        members = np.flatnonzero(labels == value)
        weights[:, members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size), n_bootstrap)
    replicates = metrics.weighted_auc_ap(labels, b, weights)[0] - metrics.weighted_auc_ap(labels, a, weights)[0]
    low, high = metrics.percentile_interval(replicates)
    p_value = min(1.0, 2.0 * min(float(np.mean(replicates <= 0)), float(np.mean(replicates >= 0))))
    return BootstrapResult(difference=difference, p_value=p_value, interval=(low, high), replicates=n_bootstrap)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for testing them all at once (NaN stays NaN)."""
    finite = [(p, i) for i, p in enumerate(p_values) if math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (len(finite) - rank) * p))
        adjusted[i] = running
    return adjusted


__all__ = [
    "BootstrapResult",
    "DeLongResult",
    "PairedTest",
    "delong",
    "holm",
    "midranks",
    "paired_bootstrap",
    "structural_components",
]
