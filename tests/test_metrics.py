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
    per_set = [metrics.binary_metrics(labels, s, n_bootstrap=0) for labels, s in sets]
    complete = metrics.average_metrics(per_set)
    assert complete["auc"] == pytest.approx(np.mean([m["auc"] for m in per_set]))
    assert complete["n"] == 300 and complete["n_sets"] == 3 and complete["defined"]["auc"] == 3
    ci = metrics.mean_intervals(sets, n_bootstrap=300, seed=0)
    low, high = ci["auc_ci"]
    assert low < complete["auc"] < high
    # a set without the ranking metrics, and a set with no result at all: no mean over the others
    mean = metrics.average_metrics([*per_set, {"auc": math.nan, "acc": 1.0, "n": 2}])
    assert math.isnan(mean["auc"]) and mean["defined"]["auc"] == 3
    assert mean["acc"] == pytest.approx(np.mean([m["acc"] for m in per_set] + [1.0]))
    assert mean["n"] == 302 and mean["n_sets"] == 4
    missing = metrics.average_metrics([*per_set, None])
    assert all(math.isnan(missing[key]) for key in metrics.SCALAR_METRICS)
    assert missing["n_sets"] == 4 and missing["defined"]["auc"] == 3 and missing["n"] == 300


def test_roc_points_for_plots() -> None:
    labels, scores = _random_set(13)
    fpr, tpr, _ = metrics.roc_points(labels, scores)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert metrics.roc_points([1, 1], [0.2, 0.3])[0].size == 0


# -- thresholds from training reals ---------------------------------------------------------------------
def test_threshold_from_reals_is_the_smallest_with_the_target_fpr() -> None:
    reals = np.arange(1, 21) / 10.0  # 0.1 ... 2.0
    threshold = metrics.threshold_from_reals(reals, fpr=0.05)  # one of 20 reals may reach it
    fpr = lambda t: float(np.mean(reals >= t))
    assert fpr(threshold) == pytest.approx(0.05)
    assert fpr(np.nextafter(threshold, -np.inf)) > 0.05  # any smaller threshold lets more reals through
    out = metrics.binary_metrics(np.zeros(20, int), reals, threshold, n_bootstrap=0)
    assert out["real_acc"] == pytest.approx(0.95)
    assert metrics.threshold_from_reals(reals, fpr=0.0) > reals.max()
    assert fpr(metrics.threshold_from_reals(reals, fpr=0.5)) == pytest.approx(0.5)


def test_threshold_from_reals_ties_nan_and_errors() -> None:
    # three reals tie at 1.0: a threshold at 1.0 flags 3 of 4 (> 50%), so it must sit just above 1.0
    threshold = metrics.threshold_from_reals([1.0, 1.0, 1.0, 0.0, np.nan], fpr=0.5)
    assert threshold == np.nextafter(1.0, np.inf)
    with pytest.raises(ValueError, match="at least one real score"):
        metrics.threshold_from_reals([np.nan])
    with pytest.raises(ValueError, match="fpr"):
        metrics.threshold_from_reals([0.1, 0.2], fpr=1.0)


def test_threshold_policy_names() -> None:
    assert metrics.threshold_policy({"threshold": 0.5})[1] in metrics.MEANINGFUL_THRESHOLD_POLICIES
    assert metrics.threshold_policy({})[1] == metrics.FIXED_POLICY not in metrics.MEANINGFUL_THRESHOLD_POLICIES
    assert metrics.TRAIN_REAL_QUANTILE_POLICY in metrics.MEANINGFUL_THRESHOLD_POLICIES


# -- the interval of a mean over test sets that share their reals ---------------------------------------
def _shared_reals(seed: int, n_real: int = 30, n_fake: int = 300, generators: int = 3, shift: float = 1.0):
    """Test sets as the harness builds them: each generator's fakes plus the same shared reals."""
    rng = np.random.default_rng(seed)
    reals = rng.normal(0.0, 1.0, n_real)
    sets, ids = [], []
    for g in range(generators):
        sets.append((np.r_[np.ones(n_fake, int), np.zeros(n_real, int)], np.r_[rng.normal(shift, 1.0, n_fake), reals]))
        ids.append([f"gen{g}/{i}.png" for i in range(n_fake)] + [f"real/{i}.png" for i in range(n_real)])
    return sets, ids


def test_mean_interval_of_copies_is_the_single_set_interval() -> None:
    """Three copies of one test set (every image shared): the joint resample is one set's own bootstrap."""
    labels, scores = _random_set(20, n_real=40, n_fake=30)
    ids = [f"img{i}" for i in range(labels.size)]
    joint = metrics.mean_intervals([(labels, scores)] * 3, n_bootstrap=500, seed=3, ids=[ids] * 3)
    auc, ap = metrics.bootstrap_auc_ap(labels, scores, n_bootstrap=500, seed=3)
    assert joint["auc_ci"] == pytest.approx(metrics.percentile_interval(auc), abs=1e-12)
    assert joint["ap_ci"] == pytest.approx(metrics.percentile_interval(ap), abs=1e-12)
    independent = metrics.mean_intervals([(labels, scores)] * 3, n_bootstrap=500, seed=3)
    ratio = np.diff(independent["auc_ci"])[0] / np.diff(joint["auc_ci"])[0]
    assert 0.45 < ratio < 0.72  # about 1/sqrt(3): treating copies as independent sets shrinks the interval


def test_shared_reals_are_resampled_jointly() -> None:
    """Few shared reals, many fakes: the reals dominate the spread of the mean AUC. Against the spread over
    fresh draws of the whole experiment, the joint interval has about the right width and the independent one
    is far too narrow."""
    rng = np.random.default_rng(123)
    means = []
    for _ in range(400):
        sets, _ = _shared_reals(int(rng.integers(1 << 30)))
        # continuous scores, no ties: AUC = share of (fake, real) pairs in the right order
        means.append(np.mean([np.mean(s[labels == 1][:, None] > s[labels == 0][None, :]) for labels, s in sets]))
    true_width = 2 * 1.96 * float(np.std(means))
    joint, independent = [], []
    for seed in range(5):
        sets, ids = _shared_reals(seed)
        joint.append(np.diff(metrics.mean_intervals(sets, 1000, 0, ids=ids)["auc_ci"])[0] / true_width)
        independent.append(np.diff(metrics.mean_intervals(sets, 1000, 0)["auc_ci"])[0] / true_width)
    assert 0.75 < np.mean(joint) < 1.25
    assert np.mean(independent) < 0.7
    assert all(j > 1.4 * i for j, i in zip(joint, independent, strict=True))


def test_mean_interval_is_undefined_without_both_classes_and_checks_ids() -> None:
    sets, ids = _shared_reals(0, n_fake=20)
    only_fakes = (np.ones(5, int), np.linspace(0, 1, 5))
    out = metrics.mean_intervals([*sets, only_fakes], 200, 0)
    assert all(math.isnan(v) for v in out["auc_ci"] + out["ap_ci"])
    with pytest.raises(ValueError, match="ids"):
        metrics.mean_intervals(sets, 200, 0, ids=ids[:2])
    with pytest.raises(ValueError, match="ids"):
        metrics.mean_intervals(sets, 200, 0, ids=[i[:-1] for i in ids])
    # NaN scores are dropped together with their ids
    labels, scores = sets[0]
    scores = scores.copy()
    scores[[0, -1]] = np.nan
    out = metrics.mean_intervals([(labels, scores), *sets[1:]], 200, 0, ids=ids)
    assert all(math.isfinite(v) for v in out["auc_ci"])
