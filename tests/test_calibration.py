"""Calibrated probabilities: Platt and isotonic maps fitted on held-out scores, stored as JSON numbers (no
pickle), applied as scikit-learn would; `dfzoo fit --calibrate` holds training images out and records the
threshold policy."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import dfzoo
from dfzoo.calibration import DECISION_FILE, PROBABILITY, TRAIN_REAL_FPR, Calibration, Decision, holdout_split
from dfzoo.cli import main
from dfzoo.data.sample import Sample
from dfzoo.safeio import refuse_pickles


def scored(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping scores on an arbitrary scale: fakes higher on average."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return rng.normal(3.0 * labels, 2.0) * 40 + 7, labels


def test_platt_matches_scikit_learn_and_is_monotone():
    from sklearn.linear_model import LogisticRegression

    scores, labels = scored()
    calibration = Calibration.fit("platt", scores, labels)
    grid = np.linspace(scores.min() - 50, scores.max() + 50, 41)
    reference = LogisticRegression(C=1e6, max_iter=1000).fit(scores[:, None], labels).predict_proba(grid[:, None])[:, 1]
    np.testing.assert_allclose(calibration.probabilities(grid), reference, atol=1e-9)
    assert np.all(np.diff(calibration.probabilities(grid)) > 0)


def test_isotonic_matches_scikit_learn_and_clips():
    from sklearn.isotonic import IsotonicRegression

    scores, labels = scored(1)
    calibration = Calibration.fit("isotonic", scores, labels)
    grid = np.linspace(scores.min() - 100, scores.max() + 100, 101)
    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels).predict(grid)
    np.testing.assert_allclose(calibration.probabilities(grid), reference, atol=1e-12)
    probabilities = calibration.probabilities(grid)
    assert probabilities.min() >= 0 and probabilities.max() <= 1 and np.all(np.diff(probabilities) >= 0)


def test_nan_scores_are_left_out_of_fitting_and_stay_nan():
    scores, labels = scored(2)
    scores[:5] = np.nan
    for method in ("platt", "isotonic"):
        calibration = Calibration.fit(method, scores, labels)
        out = calibration.probabilities(np.array([np.nan, 0.0]))
        assert np.isnan(out[0]) and np.isfinite(out[1])


def test_one_class_cannot_be_calibrated():
    with pytest.raises(ValueError, match="held-out real and fake"):
        Calibration.fit("platt", np.arange(5.0), np.ones(5))
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibration.fit("temperature", np.arange(4.0), np.array([0, 1, 0, 1]))


def test_decision_round_trips_as_json_without_pickle(tmp_path):
    from dfzoo.calibration import ThresholdPolicy

    scores, labels = scored(3)
    decision = Decision(ThresholdPolicy(PROBABILITY, 0.5), Calibration.fit("isotonic", scores, labels, 0.2))
    decision.save(tmp_path)
    json.loads((tmp_path / DECISION_FILE).read_text())  # plain JSON
    refuse_pickles(tmp_path)
    again = Decision.load(tmp_path)
    assert again.policy == decision.policy and again.calibration == decision.calibration
    assert Decision.load(tmp_path / "nothing-here").policy is None


def test_holdout_split_keeps_both_classes_and_is_seeded(tmp_path):
    samples = [Sample(path=tmp_path / f"{i}.png", label=int(i % 3 == 0)) for i in range(30)]
    fit, held = holdout_split(samples, 0.2, seed=0)
    assert {s.label for s in held} == {0, 1} and {s.label for s in fit} == {0, 1}
    assert sum(s.label == 0 for s in held) == 4 and sum(s.label == 1 for s in held) == 2
    assert not {id(s) for s in fit} & {id(s) for s in held} and len(fit) + len(held) == 30
    assert [s.path for s in holdout_split(samples, 0.2, seed=0)[1]] == [s.path for s in held]
    with pytest.raises(ValueError, match="between 0 and 1"):
        holdout_split(samples, 1.5)


def fit_argv(folder_dataset, model, *extra: str) -> list[str]:
    return [
        *("fit", "nn_cosine", "--dataset", str(folder_dataset), "--param", "backbone=tiny_cnn"),
        *("--out", str(model), *extra),
    ]


def test_fit_calibrate_saves_probabilities_and_the_policy(registry, folder_dataset, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(fit_argv(folder_dataset, model, "--calibrate", "platt", "--calibration-fraction", "0.25")) == 0
    out = capsys.readouterr().out
    assert "calibrated (platt) on 12 held-out images" in out and "fitted nn_cosine on 36 images" in out
    assert "labels: calibrated probability >= 0.5" in out
    refuse_pickles(model)
    detector = dfzoo.load_fitted(model)
    assert detector.calibration.method == "platt" and detector.threshold_policy.kind == PROBABILITY
    assert (detector.calibration.n_real, detector.calibration.n_fake) == (6, 6)
    scores_csv = tmp_path / "scores.csv"
    assert main(["predict", str(model), str(folder_dataset / "gan_b"), "--out", str(scores_csv)]) == 0
    rows = list(csv.DictReader(scores_csv.open()))
    assert rows and all(r["probability"] for r in rows)
    assert all(int(r["fake"]) == int(float(r["probability"]) >= 0.5) for r in rows)
    assert "calibrated (platt)" in repr(detector)


def test_fit_threshold_policies(registry, folder_dataset, tmp_path, capsys):
    isotonic = tmp_path / "isotonic"
    assert main(fit_argv(folder_dataset, isotonic, "--calibrate", "isotonic", "--threshold", "real-fpr")) == 0
    policy = dfzoo.load_fitted(isotonic).threshold_policy
    assert policy.kind == TRAIN_REAL_FPR and policy.fpr == 0.05 and policy.n_real == 4  # 20 % of 24 reals
    plain = tmp_path / "plain"
    assert main(fit_argv(folder_dataset, plain, "--threshold", "real-fpr")) == 0
    policy = dfzoo.load_fitted(plain).threshold_policy
    assert policy.kind == TRAIN_REAL_FPR and policy.n_real == 24 and dfzoo.load_fitted(plain).calibration is None
    capsys.readouterr()
    assert main(fit_argv(folder_dataset, tmp_path / "bad", "--threshold", "probability")) == 2
    assert "needs --calibrate" in capsys.readouterr().err


def test_fit_keeps_work_only_when_asked(registry, folder_dataset, tmp_path, monkeypatch):
    """A detector that keeps checkpoints in its work folder: removed after saving unless --keep-work."""
    from dfzoo.plugins.detectors._univfd import NearestNeighbourCosine

    original = NearestNeighbourCosine.fit

    def fit_with_checkpoint(self, train):
        self.context.workdir.mkdir(parents=True, exist_ok=True)
        (self.context.workdir / "checkpoint.bin").write_bytes(b"0" * 1024)
        return original(self, train)

    monkeypatch.setattr(NearestNeighbourCosine, "fit", fit_with_checkpoint)
    assert main(fit_argv(folder_dataset, tmp_path / "a")) == 0
    assert not (tmp_path / "a" / "work").exists()
    assert main(fit_argv(folder_dataset, tmp_path / "b", "--keep-work")) == 0
    assert (tmp_path / "b" / "work" / "checkpoint.bin").exists()
