"""NPR: the residual is zero exactly on nearest-up-sampled images, and the detector learns an up-sampling trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import dfzoo
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext
from dfzoo.plugins.detectors._npr import NPRNet, npr_residual
from tests.synthetic import smooth_image


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def _nearest_up(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random pixels at half size, nearest-up-sampled by 2: what a nearest up-sampling layer outputs."""
    small = rng.integers(0, 256, (size // 2, size // 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST))


def test_residual_is_zero_on_a_nearest_upsampled_image_and_not_otherwise():
    rng = np.random.default_rng(0)
    upsampled = _nearest_up(rng, 32)
    assert torch.count_nonzero(npr_residual(_tensor(upsampled))) == 0
    natural = smooth_image(rng)  # bicubic up-sampling: neighbours related, but not equal
    assert torch.count_nonzero(npr_residual(_tensor(natural))) > 0.5 * natural.size
    shifted = np.roll(upsampled, 1, axis=1)  # the same image off the 2x2 grid is not a fixed point
    assert torch.count_nonzero(npr_residual(_tensor(shifted))) > 0


def test_residual_matches_torch_nearest_down_then_up_and_handles_odd_sizes():
    import torch.nn.functional as F

    x = torch.rand(2, 3, 16, 24)
    expected = x - F.interpolate(F.interpolate(x, scale_factor=0.5, mode="nearest"), scale_factor=2, mode="nearest")
    assert torch.equal(npr_residual(x), expected)
    odd = torch.rand(1, 3, 15, 17)
    residual = npr_residual(odd)
    assert residual.shape == odd.shape and torch.equal(residual[..., ::2, ::2], torch.zeros_like(odd[..., ::2, ::2]))


def test_the_paper_network_is_resnet50_cut_after_two_stages():
    model = NPRNet()
    assert len(model.stages) == 2 and [len(stage) for stage in model.stages] == [3, 4]
    assert model.fc.in_features == 512 and model(torch.rand(2, 3, 32, 32)).shape == (2, 1)


def _upsampling_task(folder, n: int, seed: int) -> list[Sample]:
    """Reals: smooth images with pixel noise (no 2x2 structure). Fakes: the same kind of image at half size,
    nearest-up-sampled (a planted up-sampling artefact)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        for label in (0, 1):
            base = smooth_image(rng, 32 if label == 0 else 16).astype(np.int16)
            noisy = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
            image = Image.fromarray(noisy)
            if label == 1:
                image = image.resize((32, 32), Image.Resampling.NEAREST)
            path = folder / f"{label}_{i:03d}.png"
            image.save(path)
            samples.append(Sample(path=path, label=label, generator="up" if label else "real"))
    return samples


def test_npr_learns_a_planted_upsampling_artefact(registry, tmp_path):
    from sklearn.metrics import roc_auc_score

    train = [s.view(None) for s in _upsampling_task(tmp_path / "train", 32, seed=1)]
    test = [s.view(None) for s in _upsampling_task(tmp_path / "test", 16, seed=2)]
    params = {"layers": [1], "width": 8, "epochs": 3, "batch_size": 16, "lr": 1e-3, "augment": "none"}
    detector = dfzoo.load_detector("npr", **params).setup(RunContext(progress=False, device="cpu"))
    detector.fit(train)
    scores = detector.score(test)
    auc = roc_auc_score([s.label for s in test], scores)
    assert auc > 0.9, auc
    described = detector.describe()
    assert described["init_weights"].startswith("random-init:") and described["image_size"] == 32


@pytest.mark.parametrize("layers", [[], [0, 2], ["3"]])
def test_bad_layers_fail_before_any_work(registry, layers):
    with pytest.raises((ValueError, TypeError), match="layers"):
        dfzoo.load_detector("npr", layers=layers)
