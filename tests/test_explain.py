"""Grad-CAM explanations: maps from the CNN detectors, PNG overlays at the right size, `dfzoo explain`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import dfzoo
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext
from dfzoo.transforms import PreprocessPolicy
from tests.kit import tiny_resnet_params, write_task
from tests.synthetic import planted_fake, smooth_image

RESNET = tiny_resnet_params(image_size=64, epochs=1)  # both ResNet detectors explain the same tiny net
TINY = {
    "resnet_finetune": RESNET,
    "hierarchical_resnet18": RESNET,
    "fft_densenet": {
        "growth_rate": 8,
        "block_config": [2, 2],
        "image_size": 32,
        "epochs": 1,
        "batch_size": 8,
        "augment": "none",
        "val_fraction": 0.0,
    },
}


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    return write_task(tmp_path_factory.mktemp("explain") / "train", 8, seed=0)


@pytest.fixture
def odd_images(tmp_path):
    """A 48x40 fake, a 32x32 real and a file that is not an image."""
    rng = np.random.default_rng(4)
    wide = tmp_path / "wide.png"
    Image.fromarray(planted_fake(rng, size=48)[:40]).save(wide)  # width 48, height 40
    square = tmp_path / "square.png"
    Image.fromarray(smooth_image(rng)).save(square)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    return [Sample(path=p, label=-1) for p in (wide, square, broken)]


@pytest.mark.parametrize("name", sorted(TINY))
def test_cnn_detectors_explain_with_grad_cam_maps(name, registry, train, odd_images, tmp_path):
    from dfzoo.explain import write_overlays

    detector = dfzoo.load_detector(name, **TINY[name]).setup(RunContext(progress=False))
    detector.fit(train)
    maps = detector.explain(odd_images)
    size = TINY[name]["image_size"]
    assert [m.shape if m is not None else None for m in maps] == [(size, size), (size, size), None]
    assert all(np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0 for m in maps[:2])

    written = write_overlays(detector, odd_images, tmp_path / "out")
    assert written[2] is None and written[0].suffix == ".png" and written[0].exists()
    with Image.open(written[0]) as first, Image.open(written[1]) as second:
        if name == "fft_densenet":  # maps live on the spectrum, drawn at the model's input size
            assert first.size == second.size == (size, size)
        else:  # drawn over the image itself, at its own size
            assert first.size == (48, 40) and second.size == (32, 32)
        assert first.mode == "RGB"


def test_center_crop_maps_go_back_to_the_centre():
    from dfzoo.explain import map_to_image

    cam = np.ones((16, 16), dtype=np.float32)
    placed = map_to_image(cam, (64, 48), PreprocessPolicy("center_crop", 32))
    assert placed.shape == (48, 64)
    rows, cols = np.nonzero(placed)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 39, 16, 47)
    # an image smaller than the crop keeps only the part of the map that falls on it
    small = map_to_image(cam, (20, 20), PreprocessPolicy("center_crop", 32))
    assert small.shape == (20, 20) and small.min() == 1.0
    resized = map_to_image(np.eye(8, dtype=np.float32), (24, 16), PreprocessPolicy("resize"))
    assert resized.shape == (16, 24)
    # shortest_side took the middle 32 x 32 of a 64 x 32 image (then scaled it): the map covers only that square
    square = map_to_image(np.ones((8, 8), np.float32), (64, 32), PreprocessPolicy("shortest_side", 16))
    assert square.shape == (32, 64) and square[:, 16:48].min() == 1.0
    assert square[:, :16].max() == 0.0 and square[:, 48:].max() == 0.0


def test_explain_command_writes_overlays(registry, train, odd_images, tmp_path, capsys):
    from dfzoo.cli import main

    detector = dfzoo.load_detector("resnet_finetune", **TINY["resnet_finetune"]).setup(RunContext(progress=False))
    saved = detector.fit(train).save(tmp_path / "saved")
    code = main(
        [
            "explain",
            str(saved),
            str(odd_images[0].path),
            str(odd_images[1].path),
            "--out",
            str(tmp_path / "cams"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    pngs = sorted((tmp_path / "cams").glob("*_gradcam.png"))
    assert [p.name for p in pngs] == ["0000_wide_gradcam.png", "0001_square_gradcam.png"]
    assert "score=" in capsys.readouterr().out


def test_explain_command_refuses_detectors_without_explanations(registry, train, tmp_path, capsys):
    from dfzoo.cli import main

    detector = dfzoo.load_detector(
        "autoencoder", image_size=32, epochs=1, width=8, latent_channels=4, val_fraction=0.0
    ).setup(RunContext(progress=False))
    saved = detector.fit(train).save(tmp_path / "saved")
    code = main(["explain", str(saved), str(train[0].path), "--out", str(tmp_path / "cams")])
    assert code == 2 and "no Grad-CAM" in capsys.readouterr().err  # a command error: exit 2 (dfzoo.cli)
    assert main(["explain", str(tmp_path), str(train[0].path), "--out", str(tmp_path / "cams")]) == 2


def test_grad_cam_warns_when_the_last_feature_map_is_1x1():
    import warnings

    import torch

    from dfzoo.explain import CoarseMapWarning, grad_cam

    def model(stride: int) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, kernel_size=stride, stride=stride), torch.nn.Flatten(), torch.nn.LazyLinear(1)
        )

    inputs = torch.rand(2, 3, 8, 8)
    coarse = model(8)  # 8 px -> 1x1
    coarse(inputs)
    with pytest.warns(CoarseMapWarning, match="1x1"):
        grad_cam(coarse, inputs)
    fine = model(2)  # 8 px -> 4x4
    fine(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoarseMapWarning)
        assert grad_cam(fine, inputs).shape == (2, 8, 8)
