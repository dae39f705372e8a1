"""Training and scoring throughput (images per second) of the four trained detectors on this machine.

Run: ``pytest tests/benchmarks/test_trained_throughput.py --benchmark-only -p no:randomly -s`` (``--benchmark-only``
overrides the ``--benchmark-skip`` in the project's addopts; ``--benchmark-enable`` does not). Every method
trains one epoch on the same 64 images (64 px, random initialisation, no validation split, no checkpoints)
and scores them; the images-per-second figures are printed and stored in each benchmark's ``extra_info``.
"""

from __future__ import annotations

import pytest
import torch

import dfzoo
from dfzoo.data.sample import Sample
from dfzoo.detector import RunContext
from tests.synthetic import labelled_samples, write_folder_dataset

N_IMAGES, SIZE = 64, 64
COMMON = {"image_size": SIZE, "epochs": 1, "batch_size": 16, "augment": "none", "val_fraction": 0.0}
CONFIGS = {
    "resnet_finetune[resnet18]": ("resnet_finetune", {"arch": "resnet18", "pretrained": False}),
    "resnet_finetune[efficientnet_lite0,imagenet]": ("resnet_finetune", {"arch": "efficientnet_lite0"}),
    "hierarchical_resnet18": ("hierarchical_resnet18", {"pretrained": False}),
    "fft_densenet[densenet121]": ("fft_densenet", {}),
    "fft_densenet[small]": ("fft_densenet", {"growth_rate": 12, "block_config": [3, 6, 12, 8]}),
    "autoencoder": ("autoencoder", {}),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Sample]:
    root = write_folder_dataset(
        tmp_path_factory.mktemp("bench"), {"gan_a": 2, "gan_b": 4}, per_class=N_IMAGES // 4, size=SIZE
    )
    return labelled_samples(root)


@pytest.fixture(scope="module", autouse=True)
def threads():
    torch.set_num_threads(2)


def build(label: str):
    name, params = CONFIGS[label]
    return dfzoo.load_detector(name, **{**COMMON, **params}).setup(RunContext(progress=False, device="cpu"))


@pytest.mark.parametrize("label", list(CONFIGS))
def test_training_throughput(benchmark, label, images):
    build(label).fit(images[::8])  # warm-up: imports, weight files, allocator
    benchmark.pedantic(lambda: build(label).fit(images), rounds=2, warmup_rounds=0)
    rate = N_IMAGES / benchmark.stats.stats.mean
    benchmark.extra_info["train_images_per_second"] = rate
    print(f"\n{label}: training {rate:.1f} images/s (one epoch, {N_IMAGES} images, {SIZE} px, batch 16)")


@pytest.mark.parametrize("label", list(CONFIGS))
def test_scoring_throughput(benchmark, label, images):
    detector = build(label).fit(images)
    detector.score(images[:8])
    benchmark.pedantic(lambda: detector.score(images), rounds=3, warmup_rounds=1)
    rate = N_IMAGES / benchmark.stats.stats.mean
    benchmark.extra_info["score_images_per_second"] = rate
    print(f"\n{label}: scoring {rate:.1f} images/s ({N_IMAGES} images, {SIZE} px, batch 16)")
