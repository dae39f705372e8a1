"""detector.predict(x): one image or many, from a path, a folder, PIL, numpy or torch, through the harness's
image path (same scores as Sample.load gives the benchmark), labels at the recorded threshold, a readable repr."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dfzoo
from dfzoo.calibration import DETECTOR, ThresholdPolicy
from dfzoo.cli import main
from dfzoo.data.sample import Sample
from dfzoo.detector import NotFittedError
from dfzoo.predict import UNREADABLE


@pytest.fixture
def fitted(registry, folder_dataset, tmp_path):
    """nn_cosine on the tiny random backbone, fitted and saved by `dfzoo fit` (which records a threshold)."""
    model = tmp_path / "model"
    argv = ["fit", "nn_cosine", "--dataset", str(folder_dataset), "--param", "backbone=tiny_cnn", "--out", str(model)]
    assert main(argv) == 0
    return dfzoo.load_detector(model)


def fakes(folder_dataset):
    return sorted((folder_dataset / "gan_a" / "1_fake").glob("*.png"))


def test_every_input_form_scores_as_the_harness_does(fitted, folder_dataset):
    paths = fakes(folder_dataset)[:3]
    harness = fitted.score([Sample(path=p, label=-1).view() for p in paths])
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    import torch

    forms = {
        "paths": [str(p) for p in paths],
        "pil": [Image.open(p) for p in paths],
        "arrays": arrays,
        "batch": np.stack(arrays),
        "tensor uint8": torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2),
        "tensor float": torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255,
    }
    for form, x in forms.items():  # float32 agreement: a score is a difference of two cosines near 0.9
        np.testing.assert_allclose(fitted.predict(x).scores, harness, rtol=1e-6, atol=1e-6, err_msg=form)
    one = fitted.predict(paths[0])
    assert one.score == pytest.approx(harness[0], rel=1e-4) and one.label in (0, 1) and one.probability is None
    assert fitted.predict(arrays[0]).score == pytest.approx(harness[0], rel=1e-4)  # alone, not in a batch


def test_labels_follow_the_recorded_threshold(fitted, folder_dataset):
    assert fitted.threshold_policy is not None  # dfzoo fit recorded one
    prediction = fitted.predict(fakes(folder_dataset))
    threshold = fitted.threshold_policy.threshold
    assert prediction.labels.tolist() == [int(s >= threshold) for s in prediction.scores]
    fitted.threshold_policy = ThresholdPolicy(DETECTOR, float(np.median(prediction.scores)))
    relabelled = fitted.predict(fakes(folder_dataset))
    assert relabelled.labels.sum() == sum(s >= np.median(prediction.scores) for s in prediction.scores)


def test_a_folder_and_an_unreadable_file(fitted, folder_dataset):
    folder = folder_dataset / "gan_a" / "1_fake"
    (folder / "broken.png").write_bytes(b"not an image")
    prediction = fitted.predict(folder)
    assert len(prediction) == len(fakes(folder_dataset))
    broken = next(i for i, name in enumerate(prediction.names) if name.endswith("broken.png"))
    assert np.isnan(prediction.scores[broken]) and prediction.labels[broken] == UNREADABLE
    assert prediction.errors[broken]
    assert "unreadable" in repr(prediction)


def test_repr_is_readable(fitted, folder_dataset):
    text = repr(fitted.predict(fakes(folder_dataset)[:2]))
    assert text.startswith("Prediction(2 images: ") and "; threshold: score >= " in text
    assert fakes(folder_dataset)[0].name in text and ("generated" in text or "real" in text)
    described = repr(fitted)
    assert described.startswith("<nn_cosine(") and "backbone='tiny_cnn'" in described and "fitted" in described


def test_bad_inputs_say_what_is_accepted(fitted):
    with pytest.raises(ValueError, match="uint8"):
        fitted.predict(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        fitted.predict(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="PIL image"):
        fitted.predict(42)
    with pytest.raises(FileNotFoundError):
        fitted.predict("no/such/file.png")
    with pytest.raises(ValueError, match="holds 2 images"):
        _ = fitted.predict([np.zeros((8, 8, 3), dtype=np.uint8)] * 2).score


def test_an_unfitted_detector_refuses_to_predict(registry):
    detector = dfzoo.load_detector("nn_cosine", backbone="tiny_cnn")
    with pytest.raises(NotFittedError):
        detector.predict(np.zeros((8, 8, 3), dtype=np.uint8))
    assert "not fitted" in repr(detector)
