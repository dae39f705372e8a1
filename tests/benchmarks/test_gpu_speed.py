"""GPU speed: end-to-end features/s (JPEG decode included) of the CLIP ViT-B/16 and ViT-L/14 image towers at
float32 and AMP (float16 autocast), against the bare forward pass on batches already on the GPU.

Run on a CUDA machine (skipped elsewhere), a few minutes on one GPU:

    .venv/bin/pytest tests/benchmarks/test_gpu_speed.py --benchmark-only -p no:cacheprovider -s

Weights are random (open_clip's architectures; speed does not depend on the values). The end-to-end side is
:func:`dfzoo.features.extract_features` without the cache: decoding in DataLoader worker processes into
pinned memory (``$DFZOO_DECODE_WORKERS`` overrides their number), preprocessing, asynchronous copies, the
forward pass with out-of-memory back-off. Each result prints images/s, its fraction of the bare forward pass,
the decode workers, batch size and GPU, and keeps them in ``extra_info``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfzoo.batching import DecodePlan
from dfzoo.data.sample import Sample
from dfzoo.features import TorchBackbone, extract_features
from dfzoo.transforms import Normalisation, PreprocessPolicy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU speed suite needs CUDA")

ARCHITECTURES = {"ViT-B-16": 1024, "ViT-L-14": 512}  # open_clip name -> batch size
N_IMAGES = 4096
IMAGE_SIZE = 256  # JPEGs a little larger than the 224 px input, so resizing is part of the work
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
bare: dict[tuple[str, str], float] = {}


class Float32(torch.nn.Module):
    """The tower with autocast switched off inside: float32 arithmetic on CUDA."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", enabled=False):
            return self.inner(x.float())


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[Sample]:
    folder = tmp_path_factory.mktemp("gpu-speed")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    samples = []
    for i in range(N_IMAGES):
        image = Image.fromarray(np.roll(base, i, axis=(0, 1))).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        path = Path(folder) / f"{i:05d}.jpg"
        image.save(path, quality=90)
        samples.append(Sample(path=path, label=0))
    return samples


def tower(arch: str, precision: str) -> TorchBackbone:
    import open_clip

    model = open_clip.create_model(arch, pretrained=None)
    visual = model.visual if precision == "amp" else Float32(model.visual)
    norm = Normalisation(size=224, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic")
    return TorchBackbone(f"clip-{arch}", visual, norm, model.visual.output_dim, f"random-init:{arch}", "cuda")


def _synchronised(call) -> float:
    torch.cuda.synchronize()
    started = time.perf_counter()
    call()
    torch.cuda.synchronize()
    return time.perf_counter() - started


@pytest.mark.parametrize("precision", ["fp32", "amp"])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_bare_forward(benchmark, arch, precision):
    backbone, batch = tower(arch, precision), ARCHITECTURES[arch]
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    steps = max(1, N_IMAGES // batch)

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=precision == "amp"):
            for _ in range(steps):
                backbone.module(x)

    run()  # warm-up: kernels chosen, memory allocated
    seconds = benchmark.pedantic(lambda: _synchronised(run), rounds=3, iterations=1)
    rate = steps * batch / min(benchmark.stats.stats.min, seconds)
    bare[(arch, precision)] = rate
    benchmark.extra_info.update(images_per_s=rate, batch=batch, gpu=torch.cuda.get_device_name())
    print(f"\n{arch} {precision} bare forward: {rate:.0f} images/s (batch {batch}, {torch.cuda.get_device_name()})")


@pytest.mark.parametrize("precision", ["fp32", "amp"])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_end_to_end_with_decode(benchmark, jpegs, arch, precision):
    backbone, batch = tower(arch, precision), ARCHITECTURES[arch]
    policy = PreprocessPolicy()
    extract_features(jpegs[: 2 * batch], backbone, policy=policy, batch_size=batch, cache=False, progress=False)

    def run() -> None:
        result = extract_features(jpegs, backbone, policy=policy, batch_size=batch, cache=False, progress=False)
        assert not result.errors

    seconds = benchmark.pedantic(lambda: _synchronised(run), rounds=2, iterations=1)
    rate = len(jpegs) / min(benchmark.stats.stats.min, seconds)
    workers = DecodePlan.for_device("cuda").workers
    fraction = rate / bare[(arch, precision)] if (arch, precision) in bare else float("nan")
    benchmark.extra_info.update(
        images_per_s=rate, fraction_of_bare=fraction, decode_workers=workers, batch=batch, images=len(jpegs)
    )
    print(
        f"\n{arch} {precision} end to end (decode {IMAGE_SIZE} px JPEG, {workers} decode workers): {rate:.0f} "
        f"images/s = {fraction:.2f} x bare forward"
    )
