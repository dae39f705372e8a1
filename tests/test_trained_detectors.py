"""The four trained detectors learn for real, persist exactly, resume after an interruption, and the shared
training loop keeps its promises (stratified split, early stopping, undecodable images skipped)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

import dfzoo
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext
from tests.kit import tiny_resnet_params, write_task
from tests.synthetic import planted_fake, smooth_image


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], list[Sample]]:
    """Train (24 + 24) and held-out test (16 + 16) images; fakes carry a period-2 grid."""
    root = tmp_path_factory.mktemp("planted")
    return write_task(root / "train", 24, seed=0), write_task(root / "test", 16, seed=1)


@pytest.fixture(scope="module")
def family_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], list[Sample]]:
    """Three generators in two families: gan (gan_a, gan_b) and diffusion (diff_a)."""
    root = tmp_path_factory.mktemp("families")
    gens = ("gan_a", "gan_b", "diff_a")
    return write_task(root / "train", 30, seed=2, generators=gens), write_task(
        root / "test", 15, seed=3, generators=gens
    )


def context(**changes) -> RunContext:
    return RunContext(progress=False, **changes)


# Tiny configurations that learn the planted grid in a few seconds on a CPU.
RESNET = tiny_resnet_params(image_size=32, epochs=3, lr=1e-3)  # both ResNet detectors train the same tiny net
FAST = {
    "resnet_finetune": RESNET,
    "fft_densenet": {
        "growth_rate": 12,
        "block_config": [2, 2, 2],
        "image_size": 32,
        "epochs": 8,
        "batch_size": 8,
        "augment": "none",
        "lr": 3e-3,
        "val_fraction": 0.0,
    },
    "autoencoder": {"image_size": 32, "epochs": 5, "batch_size": 8, "augment": "none", "val_fraction": 0.0},
    "hierarchical_resnet18": RESNET,
}


@pytest.mark.parametrize("name", sorted(FAST))
def test_detector_learns_the_planted_artefact_and_reloads_identically(name, registry, task, tmp_path):
    train, test = task
    detector = dfzoo.load_detector(name, **FAST[name]).setup(context())
    detector.fit(train)
    scores = detector.score(test)
    labels = [s.label for s in test]
    assert np.isfinite(scores).all()
    assert roc_auc_score(labels, scores) > 0.8, f"{name} did not learn the planted grid"

    described = detector.describe()
    assert described["image_size"] == 32
    assert described["init_weights"].startswith("random-init")
    stage = next(iter(described["training"].values()))
    assert stage["epochs_trained"] == FAST[name]["epochs"] and stage["best_epoch"] >= 1

    reloaded = dfzoo.load_fitted(detector.save(tmp_path / "saved")).setup(context())
    np.testing.assert_array_equal(reloaded.score(test), scores)
    assert reloaded.describe()["training"] == described["training"]


def test_autoencoder_reconstruction_error_is_a_second_score(registry, task, tmp_path):
    train, test = task
    detector = dfzoo.load_detector(
        "autoencoder",
        width=16,
        latent_channels=4,
        ae_data="real",
        score="reconstruction",
        image_size=32,
        epochs=20,
        batch_size=8,
        augment="none",
        val_fraction=0.0,
    ).setup(context())
    detector.fit(train)
    both = detector.scores(test)
    labels = [s.label for s in test]
    np.testing.assert_array_equal(detector.score(test), both["reconstruction"])
    assert (both["reconstruction"] > 0).all()
    # trained on reals only, the grid is reconstructed worse than smooth images
    assert roc_auc_score(labels, both["reconstruction"]) > 0.8
    threshold = detector.describe()["threshold"]
    assert both["reconstruction"].min() < threshold < both["reconstruction"].max()
    reloaded = dfzoo.load_fitted(detector.save(tmp_path / "saved")).setup(context())
    np.testing.assert_array_equal(reloaded.scores(test)["reconstruction"], both["reconstruction"])


class Interrupt(Exception):
    pass


def test_interrupted_training_resumes_from_the_next_epoch(registry, task, tmp_path):
    train, test = task
    params = {**FAST["resnet_finetune"], "epochs": 3, "augment": "crop_flip", "val_fraction": 0.2}

    first = dfzoo.load_detector("resnet_finetune", **params).setup(context(workdir=tmp_path / "work"))

    def crash_after_first_epoch(record):
        if record.epoch == 1:
            raise Interrupt

    first.epoch_callbacks.append(crash_after_first_epoch)
    with pytest.raises(Interrupt):
        first.fit(train)
    assert list((tmp_path / "work" / "checkpoints").glob("resnet_finetune-classifier-*/last.pt"))

    second = dfzoo.load_detector("resnet_finetune", **params).setup(context(workdir=tmp_path / "work"))
    seen = []
    second.epoch_callbacks.append(lambda record: seen.append(record.epoch))
    second.fit(train)
    report = second.reports["classifier"]
    assert report.start_epoch == 2 and seen == [2, 3]
    assert [r.epoch for r in report.history] == [1, 2, 3]

    # resuming reproduces the uninterrupted run (seeded shuffles, augmentation and optimiser state)
    straight = dfzoo.load_detector("resnet_finetune", **params).setup(context(workdir=tmp_path / "other"))
    straight.fit(train)
    np.testing.assert_allclose(second.score(test), straight.score(test), rtol=1e-5, atol=1e-6)

    # a finished run is restored from its checkpoint without training again
    third = dfzoo.load_detector("resnet_finetune", **params).setup(context(workdir=tmp_path / "work"))
    third.epoch_callbacks.append(lambda record: pytest.fail("a finished run trained again"))
    third.fit(train)
    assert third.reports["classifier"].start_epoch == 4
    np.testing.assert_array_equal(third.score(test), second.score(test))


def test_hierarchy_reports_per_level_accuracy_and_confusion(registry, family_task):
    train, test = family_task
    detector = dfzoo.load_detector("hierarchical_resnet18", **FAST["hierarchical_resnet18"]).setup(context())
    detector.fit(train)
    assert roc_auc_score([s.label for s in test], detector.score(test)) > 0.8
    assert detector.classes == {
        "level1": ["real", "fake"],
        "level2": ["diffusion", "gan"],
        "level3/gan": ["gan_a", "gan_b"],
    }
    assert "level3/diffusion" in detector.notes  # one diffusion generator: no level-3 classifier

    metrics = detector.extra_metrics(test)
    level1, level2, gan = metrics["level1"], metrics["level2"], metrics["level3"]["gan"]
    assert level1["confusion"]["labels"] == ["real", "fake"] and level1["n"] == len(test)
    assert level2["confusion"]["labels"] == ["diffusion", "gan"] and level2["n"] == 15
    assert gan["confusion"]["labels"] == ["gan_a", "gan_b"] and gan["n"] == 10
    for level in (level1, level2, gan):
        matrix = np.asarray(level["confusion"]["matrix"])
        assert matrix.sum() == level["n"]
        assert level["accuracy"] == pytest.approx(np.trace(matrix) / level["n"])
    # the confusion rows are the true classes: 5 diffusion and 10 gan fakes in the test set
    assert np.asarray(level2["confusion"]["matrix"]).sum(axis=1).tolist() == [5, 10]
    assert metrics["level3"]["diffusion"]["trained"] is False
    assert 0.0 <= metrics["end_to_end"]["accuracy"] <= 1.0


def test_undecodable_training_images_are_skipped_and_recorded(registry, task, tmp_path):
    train, test = task
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    params = {**FAST["resnet_finetune"], "epochs": 1}
    detector = dfzoo.load_detector("resnet_finetune", **params).setup(context())
    detector.fit([*train, Sample(path=bad, label=1, generator="gan_a", family="gan")])
    assert str(bad) in detector.skipped
    assert detector.describe()["training"]["classifier"]["skipped"] == 1
    scores = detector.score([test[0], Sample(path=bad, label=1)])
    assert np.isfinite(scores[0]) and np.isnan(scores[1])


def test_pretrained_weights_never_fall_back_to_random(registry, task):
    from dfzoo.training import create_timm_model
    from dfzoo.weights import WeightsNotFound

    train, _ = task
    for arch, weights in (("resnet50", "resnet50_in1k"), ("resnet18", "resnet18_in1k")):
        detector = dfzoo.load_detector("resnet_finetune", arch=arch, image_size=32, epochs=1).setup(context())
        with pytest.raises(WeightsNotFound, match=weights):  # offline and nothing cached: a clear error
            detector.fit(train)
        assert not detector.fitted
    with pytest.raises(ValueError, match="pretrained=False"):  # no weights registered for this arch at all
        create_timm_model("resnet10t", 1, pretrained=True)


def test_efficientnet_lite0_starts_from_the_offline_imagenet_weights(registry):
    from dfzoo.features import load_backbone
    from dfzoo.training import create_timm_model

    model, init = create_timm_model("efficientnet_lite0", 1, pretrained=True)
    assert init.pretrained and init.identity.startswith("efficientnet_lite0_in1k@sha256:")
    backbone = load_backbone("efficientnet_lite0", pretrained=True)
    reference = backbone.module.state_dict()
    for key, tensor in model.state_dict().items():
        if not key.startswith("classifier."):
            assert np.array_equal(tensor.numpy(), reference[key].numpy()), key
    assert tuple(model.state_dict()["classifier.weight"].shape) == (1, 1280)


def test_cnnspot_preset_fills_defaults_but_keeps_explicit_values(registry):
    from dfzoo.plugins.detectors.resnet_finetune import DEFAULTS, PRESETS, apply_preset

    explicit = {**DEFAULTS, "preset": "cnnspot", "lr": 3e-4}
    options = apply_preset(explicit, DEFAULTS, PRESETS)
    assert options["lr"] == 3e-4  # the user's choice wins
    assert (options["optimiser"], options["batch_size"], options["image_size"], options["augment"]) == (
        "sgd",
        128,
        256,
        "blur_jpeg_0.5",
    )
    with pytest.raises(ValueError, match="unknown preset"):
        apply_preset({**DEFAULTS, "preset": "nope"}, DEFAULTS, PRESETS)
    detector = dfzoo.load_detector("resnet_finetune", preset="cnnspot", pretrained=False)
    config = detector.train_config
    assert (config.optimiser, config.lr, config.momentum, config.batch_size) == ("sgd", 1e-5, 0.9, 128)
    assert detector.resolve_image_size([]) == 256 and config.freeze_norm is False


def test_split_is_stratified_seeded_and_disjoint():
    from dfzoo.training import split_indices

    targets = [0] * 20 + [1] * 10 + [2] * 2
    train, val = split_indices(targets, 0.2, seed=3)
    assert sorted(train + val) == list(range(len(targets))) and not set(train) & set(val)
    assert [sum(targets[i] == c for i in val) for c in (0, 1, 2)] == [4, 2, 1]
    assert split_indices(targets, 0.2, seed=3) == (train, val)
    assert split_indices(targets, 0.2, seed=4) != (train, val)
    assert split_indices(targets, 0.0, seed=3) == (list(range(len(targets))), [])


def test_training_stops_early_and_keeps_the_best_epoch(tmp_path):
    import torch

    from dfzoo.training import Augment, ImagePipeline, SampleDataset, TrainConfig, train_model
    from dfzoo.transforms import Normalisation, PreprocessPolicy

    rng = np.random.default_rng(0)
    samples = [Sample.from_image(Image.fromarray(smooth_image(rng, 8)), label=i % 2) for i in range(8)]
    pipeline = ImagePipeline(PreprocessPolicy(), Normalisation(size=8), augment=Augment())
    data = SampleDataset(samples, [s.label for s in samples], pipeline)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1))
    weights_after: list = []  # one entry per finished epoch

    def loss(model, inputs, targets):
        real = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs).reshape(-1), targets.float())
        if model.training:
            return real
        return real * 0 + len(weights_after) + 1  # validation loss = the epoch number: worse every epoch

    report = train_model(
        model,
        data,
        loss,
        TrainConfig(epochs=10, batch_size=4, patience=2, lr=0.1),
        device=torch.device("cpu"),
        val_dataset=data,
        progress=False,
        callbacks=[lambda r: weights_after.append(model[1].weight.detach().clone())],
    )
    assert report.stopped_early and report.epochs_trained == 3
    assert report.best_epoch == 1 and report.best_val_loss == 1.0
    assert torch.equal(model[1].weight, weights_after[0])  # the best (first) epoch's weights are restored
    assert not torch.equal(weights_after[0], weights_after[-1])


def test_log_spectrum_shows_the_grid_at_nyquist():
    from dfzoo.plugins.detectors.fft_densenet import log_spectrum

    rng = np.random.default_rng(0)
    real = log_spectrum(smooth_image(rng).transpose(2, 0, 1) / 255.0)
    fake = log_spectrum(planted_fake(rng, period=2).transpose(2, 0, 1) / 255.0)
    assert real.shape == fake.shape == (1, 32, 32)
    assert abs(float(fake.mean())) < 1e-4 and float(fake.std()) == pytest.approx(1.0, abs=1e-3)
    # the checkerboard's energy sits at the highest frequency, the corner after fftshift
    assert fake[0, 0, 0] > real[0, 0, 0] + 2.0


def test_blur_jpeg_augmentation_is_seeded_and_keeps_the_shape():
    from dfzoo.training import ImagePipeline, augment_preset
    from dfzoo.transforms import Normalisation, PreprocessPolicy

    image = Image.fromarray(planted_fake(np.random.default_rng(0), size=40))
    pipeline = ImagePipeline(PreprocessPolicy(), Normalisation(size=32), augment=augment_preset("blur_jpeg_0.5"))
    outputs = [pipeline(image, np.random.default_rng([0, 1, i])) for i in range(6)]
    assert all(o.shape == (3, 32, 32) and o.dtype == np.float32 for o in outputs)
    assert not all(np.array_equal(outputs[0], o) for o in outputs[1:])
    np.testing.assert_array_equal(pipeline(image, np.random.default_rng([0, 1, 0])), outputs[0])
    np.testing.assert_array_equal(pipeline(image), pipeline(image))  # no rng: no augmentation
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_preset("blur_jpeg_0.3")


def test_imagenet_initialised_finetune_learns_and_records_its_weights(registry, task, tmp_path):
    train, test = task
    # 64 px inputs: ImageNet features need more than the 1x1 last stage a 32 px input leaves
    detector = dfzoo.load_detector(
        "resnet_finetune",
        arch="efficientnet_lite0",
        image_size=64,
        epochs=4,
        batch_size=8,
        lr=1e-3,
        augment="none",
        val_fraction=0.0,
    ).setup(context())
    detector.fit(train)
    assert detector.describe()["init_weights"].startswith("efficientnet_lite0_in1k@sha256:")
    assert detector.describe()["freeze_norm"] is True  # the default for a pretrained net
    scores = detector.score(test)
    assert roc_auc_score([s.label for s in test], scores) > 0.8
    reloaded = dfzoo.load_fitted(detector.save(tmp_path / "saved")).setup(context())
    assert reloaded.describe()["init_weights"] == detector.describe()["init_weights"]
    np.testing.assert_array_equal(reloaded.score(test), scores)
