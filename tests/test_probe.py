"""The probe suite: every reduction x classifier learns separable features and saves without pickle; the probe
detector fits, scores, applies the run's perturbations, saves and reloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import dfzoo
from dfzoo.detector import RunContext
from dfzoo.plugins.detectors._probe.classifiers import CLASSIFIERS
from dfzoo.plugins.detectors._probe.pipeline import FeaturePipeline
from dfzoo.plugins.detectors._probe.reductions import REDUCTIONS, AutoencoderReduction, PCAReduction
from dfzoo.plugins.detectors._probe.state import ESTIMATORS_FILE, read_state, read_values, write_state
from dfzoo.safeio import refuse_pickles
from dfzoo.transforms import make_perturbation
from tests.synthetic import labelled_samples as labelled


def separable(seed: int, n: int = 40, dim: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes whose means differ along a few directions, plus a collinear column."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n)
    shift = np.zeros(dim)
    shift[:4] = 2.0
    features = rng.normal(size=(2 * n, dim)) + labels[:, None] * shift
    features[:, -1] = features[:, 0] * 2.0  # collinear: LDA/QDA must survive it
    return features.astype(np.float32), labels


def test_there_are_twelve_classifiers_and_three_reductions():
    assert sorted(CLASSIFIERS) == sorted(
        ["bagging", "tree", "forest", "lda", "qda", "knn1", "knn3", "knn5", "logreg", "svm", "gboost", "nb"]
    )
    assert sorted(REDUCTIONS) == ["ae", "none", "pca"]


@pytest.mark.parametrize("reduction", sorted(REDUCTIONS))
@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
def test_each_classifier_and_reduction_scores_held_out_separable_features(classifier, reduction):
    train_x, train_y = separable(0)
    test_x, test_y = separable(1)
    options = {"pca": {"n_components": 8}, "ae": {"latent_dim": 8, "epochs": 60}}.get(reduction, {})
    pipeline = FeaturePipeline(reduction, classifier, reduction_options=options, seed=0).fit(train_x, train_y)
    scores = pipeline.score(test_x)
    assert scores.shape == (len(test_y),) and np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(test_y, scores) > 0.75
    accuracy = ((scores > 0.5) == test_y).mean()  # 0.5 is each classifier's own threshold
    assert accuracy > 0.65


@pytest.mark.parametrize("reduction", sorted(REDUCTIONS))
@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
def test_each_classifier_and_reduction_round_trips_without_pickle(classifier, reduction, tmp_path):
    """Saved as JSON + npz + skops, loaded against the types its configuration declares, the pipeline gives
    bit-identical probabilities; the declared types cover everything skops does not trust by itself."""
    import skops.io

    train_x, train_y = separable(0, n=20)
    test_x, _ = separable(1, n=20)
    options = {"pca": {"n_components": 4}, "ae": {"latent_dim": 4, "epochs": 5}}.get(reduction, {})
    pipeline = FeaturePipeline(reduction, classifier, reduction_options=options, seed=3).fit(train_x, train_y)
    state = pipeline.fitted_state()
    slots = FeaturePipeline.estimator_types(state.values)
    write_state(tmp_path, state, slots)
    refuse_pickles(tmp_path)  # nothing saved is a pickle

    values = read_values(tmp_path)
    assert FeaturePipeline.estimator_types(values) == slots
    assert set(skops.io.get_untrusted_types(file=tmp_path / ESTIMATORS_FILE)) <= {
        t for ts in slots.values() for t in ts
    }
    loaded = FeaturePipeline.from_state(read_state(tmp_path, values, slots))
    reduced, reloaded = pipeline.transform(test_x), loaded.transform(test_x)
    np.testing.assert_array_equal(reloaded, reduced)
    np.testing.assert_array_equal(loaded.classifier.predict_proba(reloaded), pipeline.classifier.predict_proba(reduced))
    np.testing.assert_array_equal(loaded.score(test_x), pipeline.score(test_x))
    assert loaded.describe() == pipeline.describe()


def test_a_classifier_option_outside_the_declared_types_fails_at_save_not_at_load(tmp_path):
    """knn with the Manhattan metric holds a distance type the knn entry does not declare."""
    train_x, train_y = separable(0, n=20, dim=4)
    pipeline = FeaturePipeline("none", "knn3", classifier_options={"metric": "manhattan"}).fit(train_x, train_y)
    state = pipeline.fitted_state()
    with pytest.raises(TypeError, match=r"would not load.*ManhattanDistance64"):
        write_state(tmp_path, state, FeaturePipeline.estimator_types(state.values))
    assert not (tmp_path / ESTIMATORS_FILE).exists()


def test_shuffled_labels_score_near_chance():
    """The same pipeline on labels unrelated to the features learns nothing (the test above can fail)."""
    train_x, train_y = separable(0)
    test_x, test_y = separable(1)
    shuffled = np.random.default_rng(3).permutation(train_y)
    scores = FeaturePipeline("none", "logreg").fit(train_x, shuffled).score(test_x)
    assert abs(roc_auc_score(test_y, scores) - 0.5) < 0.25


def test_pca_caps_components_at_what_the_training_set_supports():
    x, _ = separable(0, n=5, dim=24)
    reduced = PCAReduction(n_components=64).fit(x).transform(x)
    assert reduced.shape == (10, 10)


def test_autoencoder_transform_is_numpy_and_learns_the_data():
    x, _ = separable(0)
    short = AutoencoderReduction(latent_dim=6, epochs=1).fit(x, seed=0)
    trained = AutoencoderReduction(latent_dim=6, epochs=40).fit(x, seed=0)
    assert trained.transform(x).shape == (80, 6)
    assert all(isinstance(w, np.ndarray) for pair in trained.encoder for w in pair)
    assert trained.final_loss < short.final_loss
    again = AutoencoderReduction(latent_dim=6, epochs=40).fit(x, seed=0)
    np.testing.assert_allclose(again.transform(x), trained.transform(x), rtol=1e-5, atol=1e-5)


def test_unknown_parts_are_clear_errors(registry):
    with pytest.raises(ValueError, match="unknown classifier 'svc'"):
        dfzoo.load_detector("probe", classifier="svc")
    with pytest.raises(ValueError, match="unknown reduction"):
        dfzoo.load_detector("probe", reduction="umap")


def test_probe_label_names_its_parts(registry):
    detector = dfzoo.load_detector(
        "probe", backbone="efficientnet_lite0+clip_vit_b16_int8", reduction="pca", classifier="svm"
    )
    assert detector.label == "probe[backbone=efficientnet_lite0+clip_vit_b16_int8,reduction=pca,classifier=svm]"


def test_concatenated_backbones_need_the_weights_of_every_part(registry):
    assert registry.weights_needed("probe", {"backbone": "efficientnet_lite0+resnet50"}) == [
        "efficientnet_lite0_in1k",
        "resnet50_in1k",
    ]
    assert registry.weights_needed("probe", {"backbone": ["efficientnet_lite0", "resnet50"]}) == [
        "efficientnet_lite0_in1k",
        "resnet50_in1k",
    ]


@pytest.mark.parametrize("reduction", ["none", "pca", "ae"])
def test_probe_on_tiny_cnn_fits_scores_saves_and_loads(reduction, registry, folder_dataset, tmp_path):
    samples = labelled(folder_dataset)
    train, test = samples[::2], samples[1::2]
    detector = dfzoo.load_detector(
        "probe", backbone="tiny_cnn", reduction=reduction, n_components=8, latent_dim=8, classifier="logreg"
    ).setup(RunContext(progress=False))
    detector.fit(train)
    scores = detector.score(test)
    assert roc_auc_score([s.label for s in test], scores) > 0.8
    info = detector.describe()
    json.dumps(info)
    assert info["backbone"] == "tiny_cnn" and info["backbone_weights"].startswith("random-init:")
    assert info["reduction"] == reduction and info["classifier"] == "logreg" and info["pretrained"] is False
    assert info["trained_on"]["n_train"] == len(train)
    saved = detector.save(tmp_path / "probe")
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        ["dfzoo-detector.json", "probe.json", "probe.npz", "probe.skops"]
    )
    reloaded = dfzoo.load_fitted(saved).setup(RunContext(progress=False))
    np.testing.assert_array_equal(reloaded.score(test), scores)
    assert reloaded.describe()["trained_on"] == info["trained_on"]


def test_train_and_test_perturbations_are_really_applied(registry, folder_dataset):
    samples = labelled(folder_dataset)
    blur = make_perturbation("blur:sigma=2")
    clean = dfzoo.load_detector("probe", backbone="tiny_cnn").setup(RunContext(progress=False))
    plain = clean.embed(samples[:4])
    blurred = clean.embed([s.view(blur) for s in samples[:4]])
    assert not np.allclose(plain, blurred, atol=1e-3)

    detector = dfzoo.load_detector("probe", backbone="tiny_cnn").setup(RunContext(progress=False))
    detector.fit([s.view(make_perturbation("jpeg:quality=30")) for s in samples])
    assert detector.describe()["trained_on"]["train_perturbation"] == "jpeg:quality=30"
    before = detector.score(samples)
    assert not np.allclose(detector.score([s.view(blur) for s in samples]), before)


def test_concatenated_probe_matches_its_parts(registry, folder_dataset):
    samples = labelled(folder_dataset)[:6]
    single = dfzoo.load_detector("probe", backbone="tiny_cnn").setup(RunContext(progress=False))
    double = dfzoo.load_detector("probe", backbone="tiny_cnn+tiny_cnn").setup(RunContext(progress=False))
    one, two = single.embed(samples), double.embed(samples)
    assert two.shape == (6, 2 * one.shape[1])
    np.testing.assert_allclose(two, np.hstack([one, one]), rtol=1e-6)
    assert double.describe()["feature_dim"] == 2 * single.describe()["feature_dim"]


def test_loaded_probe_refuses_different_backbone_weights(registry, folder_dataset, tmp_path):
    samples = labelled(folder_dataset)
    detector = dfzoo.load_detector("probe", backbone="tiny_cnn").setup(RunContext(progress=False)).fit(samples)
    saved = detector.save(tmp_path / "probe")
    reloaded = dfzoo.load_fitted(saved)
    reloaded.trained_on["backbone_weights"] = ["random-init:0000"]
    with pytest.raises(ValueError, match="trained on backbone weights"):
        reloaded.score(samples[:2])


@pytest.mark.parametrize("classifier", sorted(CLASSIFIERS))
def test_each_classifier_survives_more_dimensions_than_samples(classifier):
    """Frozen features are wide (1280-d for EfficientNet) and training sets can be small: no classifier may
    fail on a rank-deficient class covariance."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 15)
    features = rng.normal(size=(30, 120)) + labels[:, None] * np.r_[np.full(6, 2.0), np.zeros(114)]
    test = rng.normal(size=(30, 120)) + labels[:, None] * np.r_[np.full(6, 2.0), np.zeros(114)]
    scores = FeaturePipeline("none", classifier).fit(features, labels).score(test)
    assert np.isfinite(scores).all() and roc_auc_score(labels, scores) > 0.6


def test_constant_features_are_dropped_before_the_classifier():
    """ReLU backbones give many all-zero features on small images; they carry nothing and make class
    covariances exactly degenerate, so the pipeline drops them (and says how many)."""
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 15)
    features = np.zeros((30, 100), dtype=np.float32)
    features[:, :40] = rng.normal(size=(30, 40)) + labels[:, None] * 1.5
    pipeline = FeaturePipeline("none", "qda").fit(features, labels)
    assert pipeline.describe()["constant_features_dropped"] == 60
    assert pipeline.describe()["feature_dim"] == 100 and pipeline.describe()["reduced_dim"] == 40
    assert pipeline.transform(features).shape == (30, 40)
    assert roc_auc_score(labels, pipeline.score(features)) > 0.9
