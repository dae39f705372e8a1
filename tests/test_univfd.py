"""UnivFD's two detectors learn a planted artefact on frozen features and behave as the paper describes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import dfzoo
from dfzoo.detector import NotFittedError, RunContext
from tests.synthetic import labelled_samples as labelled


@pytest.mark.parametrize("name", ["clip_probe", "nn_cosine"])
def test_learns_planted_artefact_on_held_out_generator_images(name, registry, folder_dataset):
    samples = labelled(folder_dataset)
    train = [s for i, s in enumerate(samples) if i % 3]
    test = [s for i, s in enumerate(samples) if not i % 3]
    detector = dfzoo.load_detector(name, backbone="tiny_cnn").setup(RunContext(progress=False))
    detector.fit(train)
    scores = detector.score(test)
    assert roc_auc_score([s.label for s in test], scores) > 0.8


def test_nn_cosine_scores_a_training_fake_as_fake_and_a_training_real_as_real(registry, folder_dataset):
    samples = labelled(folder_dataset)
    detector = dfzoo.load_detector("nn_cosine", backbone="tiny_cnn").setup(RunContext(progress=False))
    detector.fit(samples)
    real = next(s for s in samples if s.label == 0)
    fake = next(s for s in samples if s.label == 1)
    real_score, fake_score = detector.score([real, fake])
    assert real_score < 0 < fake_score  # its own nearest neighbour decides, at threshold 0
    assert detector.describe()["threshold"] == 0.0


def test_score_before_fit_is_a_clear_error(registry, folder_dataset):
    detector = dfzoo.load_detector("clip_probe", backbone="tiny_cnn")
    with pytest.raises(NotFittedError, match="fit"):
        detector.score(labelled(folder_dataset)[:2])


def test_fit_needs_both_classes(registry, folder_dataset):
    reals = [s for s in labelled(folder_dataset) if s.label == 0]
    with pytest.raises(ValueError, match="both real"):
        dfzoo.load_detector("nn_cosine", backbone="tiny_cnn").fit(reals)


def test_default_backbone_without_weights_fails_loudly_not_randomly(registry, folder_dataset):
    from dfzoo.weights import WeightsNotFound

    detector = dfzoo.load_detector("clip_probe")
    with pytest.raises(WeightsNotFound, match="clip_vit_l14_openai"):
        detector.fit(labelled(folder_dataset))


def test_test_perturbation_changes_scores(registry, folder_dataset):
    from dfzoo.transforms import make_perturbation

    samples = labelled(folder_dataset)
    detector = dfzoo.load_detector("clip_probe", backbone="tiny_cnn").setup(RunContext(progress=False))
    detector.fit(samples)
    clean = detector.score(samples)
    blurred = [s.view(make_perturbation("blur:sigma=2")) for s in samples]
    assert not np.allclose(clean, detector.score(blurred))
