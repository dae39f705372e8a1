"""Metrics against scikit-learn and against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dfzoo.benchmark import metrics


def _random_set(seed: int, n_real: int = 60, n_fake: int = 40, ties: bool = False):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    scores = np.r_[rng.normal(0.4, 0.2, n_real), rng.normal(0.6, 0.2, n_fake)]
    if ties:
        scores = np.round(scores, 1)
    return labels, scores


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False)])
def test_auc_and_ap_match_sklearn(seed: int, ties: bool) -> None:
    labels, scores = _random_set(seed, ties=ties)
    out = metrics.binary_metrics(labels, scores, n_bootstrap=0)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["ap"] == pytest.approx(average_precision_score(labels, scores))


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_formula_matches_sklearn_with_sample_weight(ties: bool) -> None:
    labels, scores = _random_set(3, ties=ties)
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, size=(5, labels.size)).astype(float)
    weights[:, 0] = 1  # keep both classes present
    weights[:, -1] = 1
    auc, ap = metrics.weighted_auc_ap(labels, scores, weights)
    for row in range(weights.shape[0]):
        assert auc[row] == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights[row]))
        assert ap[row] == pytest.approx(average_precision_score(labels, scores, sample_weight=weights[row]))


def test_hand_computed_operating_points() -> None:
    # reals 0.1, 0.6; fakes 0.4, 0.9. ROC points (fpr, tpr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.6, 0.4, 0.9]
    out = metrics.binary_metrics(labels, scores, threshold=0.5, n_bootstrap=0)
    assert out["eer"] == pytest.approx(0.5)  # at threshold 0.6: FPR = FNR = 1/2
    assert out["tpr_at_1fpr"] == pytest.approx(0.5)  # threshold 0.9 flags one fake, no real
    assert out["tpr_at_5fpr"] == pytest.approx(0.5)
    assert out["acc"] == pytest.approx(0.5)  # 0.1 real ok, 0.6 real wrong, 0.4 fake wrong, 0.9 fake ok
    assert out["real_acc"] == pytest.approx(0.5)
    assert out["fake_acc"] == pytest.approx(0.5)
    assert out["best_acc"] == pytest.approx(0.75)  # thresholds 0.4 and 0.9 both get 3 of 4 right
    assert out["best_threshold"] in (pytest.approx(0.4), pytest.approx(0.9))
    assert out["auc"] == pytest.approx(0.75)


def test_eer_interpolates_between_operating_points() -> None:
    # reals 0.2, 0.3, 0.7; fakes 0.5, 0.8, 0.9 -> points (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1) ...
    # FNR - FPR is 1/3 at (0, 2/3) and exactly 0 at (1/3, 2/3): EER = 1/3.
    out = metrics.binary_metrics([0, 0, 0, 1, 1, 1], [0.2, 0.3, 0.7, 0.5, 0.8, 0.9], n_bootstrap=0)
    assert out["eer"] == pytest.approx(1 / 3)
    # A crossing strictly between two operating points:
    fpr = np.array([0.0, 0.0, 1.0])
    tpr = np.array([0.0, 0.6, 1.0])
    # gap: 1, 0.4, -1 -> t = 0.4 / 1.4 between (0, .6) and (1, 1): fpr = t
    assert metrics.equal_error_rate(fpr, tpr) == pytest.approx(0.4 / 1.4)


def test_tpr_at_fpr_is_conservative() -> None:
    fpr = np.array([0.0, 0.0, 0.02, 0.04, 0.2, 1.0])
    tpr = np.array([0.0, 0.3, 0.5, 0.7, 0.9, 1.0])
    assert metrics.tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.3)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.05) == pytest.approx(0.7)


def test_nan_scores_are_dropped_and_counted() -> None:
    labels, scores = _random_set(4)
    with_nan = scores.copy()
    with_nan[[0, 5, 70]] = np.nan
    out = metrics.binary_metrics(labels, with_nan, n_bootstrap=0)
    keep = ~np.isnan(with_nan)
    assert out["n_nan"] == 3
    assert out["n"] == labels.size - 3
    assert out["n_fake"] == 39 and out["n_real"] == 58
    assert out["auc"] == pytest.approx(roc_auc_score(labels[keep], scores[keep]))


def test_single_class_gives_nan_ranking_metrics_but_accuracy() -> None:
    out = metrics.binary_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert math.isnan(out["auc"]) and math.isnan(out["ap"]) and math.isnan(out["eer"])
    assert out["fake_acc"] == pytest.approx(2 / 3)
    assert math.isnan(out["real_acc"])
    assert "auc_ci" not in out


def test_threshold_policy_from_describe() -> None:
    assert metrics.threshold_policy({}) == (0.5, "fixed")
    assert metrics.threshold_policy({"threshold": 0.0}) == (0.0, "detector")
    assert metrics.threshold_policy({"threshold": "auto"}) == (0.5, "fixed")
    out = metrics.binary_metrics([0, 1], [-0.1, 0.1], threshold=0.0, n_bootstrap=0)
    assert out["acc"] == 1.0 and out["threshold"] == 0.0


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    labels, scores = _random_set(5, n_real=80, n_fake=50)
    first = metrics.binary_metrics(labels, scores, n_bootstrap=400, seed=7)
    again = metrics.binary_metrics(labels, scores, n_bootstrap=400, seed=7)
    other = metrics.binary_metrics(labels, scores, n_bootstrap=400, seed=8)
    assert first["auc_ci"] == again["auc_ci"] and first["ap_ci"] == again["ap_ci"]
    assert first["auc_ci"] != other["auc_ci"]
    low, high = first["auc_ci"]
    assert low < first["auc"] < high
    assert 0.02 < high - low < 0.4
    low, high = first["ap_ci"]
    assert low < first["ap"] < high


def test_bootstrap_replicates_follow_sklearn_on_each_resample() -> None:
    """Replicate r equals sklearn on the stratified resample drawn with the same generator."""
    labels, scores = _random_set(6, n_real=30, n_fake=20)
    auc, ap = metrics.bootstrap_auc_ap(labels, scores, n_bootstrap=3, seed=11)
    rng = np.random.default_rng(11)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    pos_draws = rng.integers(0, positives.size, size=(3, positives.size))
    neg_draws = rng.integers(0, negatives.size, size=(3, negatives.size))
    for r in range(3):
        index = np.r_[positives[pos_draws[r]], negatives[neg_draws[r]]]
        assert auc[r] == pytest.approx(roc_auc_score(labels[index], scores[index]))
        assert ap[r] == pytest.approx(average_precision_score(labels[index], scores[index]))


def test_average_and_mean_interval() -> None:
    sets = [_random_set(seed) for seed in (10, 11, 12)]
    per_set = [metrics.binary_metrics(l, s, n_bootstrap=0) for l, s in sets]
    per_set.append({"auc": math.nan, "acc": 1.0, "n": 2})  # a set without the ranking metrics
    mean = metrics.average_metrics(per_set)
    assert mean["auc"] == pytest.approx(np.mean([m["auc"] for m in per_set[:3]]))
    assert mean["acc"] == pytest.approx(np.mean([m["acc"] for m in per_set]))
    assert mean["n"] == 302 and mean["n_sets"] == 4
    ci = metrics.mean_intervals(sets, n_bootstrap=300, seed=0)
    low, high = ci["auc_ci"]
    assert low < mean["auc"] < high


def test_roc_points_for_plots() -> None:
    labels, scores = _random_set(13)
    fpr, tpr, _ = metrics.roc_points(labels, scores)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert metrics.roc_points([1, 1], [0.2, 0.3])[0].size == 0
