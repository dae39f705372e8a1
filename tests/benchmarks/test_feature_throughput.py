"""Feature extraction speed: the cached pipeline against the bare backbone forward pass.

Run: ``pytest tests/benchmarks/test_feature_throughput.py --benchmark-enable``. The ratios are printed and
stored in the benchmark's ``extra_info``; both sides run in the same session on the same images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfzoo.data.sample import Sample
from dfzoo.features import FeatureCache, cache_key, extract_features, load_backbone, prepare_image
from dfzoo.transforms import PreprocessPolicy
from tests.synthetic import write_folder_dataset

BATCH = 32
N_IMAGES = 128
means: dict[str, float] = {}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = write_folder_dataset(tmp_path_factory.mktemp("bench"), {"gan": 2}, per_class=N_IMAGES // 2, size=64)
    return [Sample(path=p, label=0) for p in sorted(root.rglob("*.png"))]


@pytest.fixture(scope="module")
def backbone():
    torch.set_num_threads(2)
    return load_backbone("efficientnet_lite0")


def test_bare_forward(benchmark, backbone, images):
    policy = PreprocessPolicy()
    arrays = np.stack([prepare_image(s, policy, backbone.normalisation) for s in images])
    batches = [arrays[i : i + BATCH] for i in range(0, len(arrays), BATCH)]
    benchmark.pedantic(lambda: [backbone.embed(b) for b in batches], rounds=3, warmup_rounds=1)
    means["bare"] = benchmark.stats.stats.mean


def test_extract_cold(benchmark, backbone, images, tmp_path):
    counter = iter(range(10_000))

    def cold():  # a fresh, empty cache every round: decode + preprocess + forward + store
        cache = FeatureCache(f"cold-{next(counter)}", root=tmp_path)
        extract_features(images, backbone, batch_size=BATCH, cache=cache, progress=False)
        cache.close()

    benchmark.pedantic(cold, rounds=3, warmup_rounds=0)
    means["cold"] = benchmark.stats.stats.mean
    if "bare" in means:
        ratio = means["bare"] / means["cold"]
        benchmark.extra_info["throughput_fraction_of_bare_forward"] = ratio
        print(f"\nextraction throughput = {ratio:.2f} x bare forward ({N_IMAGES} images, batch {BATCH})")


def test_extract_warm(benchmark, backbone, images, tmp_path):
    cache = FeatureCache(cache_key(backbone, PreprocessPolicy()), root=tmp_path)
    extract_features(images, backbone, batch_size=BATCH, cache=cache, progress=False)
    benchmark.pedantic(
        lambda: extract_features(images, backbone, batch_size=BATCH, cache=cache, progress=False),
        rounds=5,
        warmup_rounds=1,
    )
    means["warm"] = benchmark.stats.stats.mean
    if "cold" in means:
        speedup = means["cold"] / means["warm"]
        benchmark.extra_info["warm_speedup_over_cold"] = speedup
        print(f"\nwarm (cached) extraction is {speedup:.0f}x faster than cold")
