"""GPU readiness on a CPU machine: the out-of-memory back-off of the cache engine, what rows record about the
device (torch.cuda mocked), channels-last placement and the up-front device check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfzoo import device as dev
from dfzoo.cache import compute_cached
from dfzoo.data.sample import Sample
from dfzoo.device import DeviceError, OomBackoff, describe_device, pick_device, prefers_channels_last, to_device


def _oom_above(limit: int, calls: list[int]):
    def compute(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(batch) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1) * 2

    return compute


def test_backoff_halves_the_batch_and_keeps_the_size_that_fit():
    calls: list[int] = []
    run = OomBackoff(_oom_above(3, calls))
    batch = np.arange(8, dtype=np.float32).reshape(8, 1)
    np.testing.assert_array_equal(run(batch), batch * 2)
    assert calls == [8, 4, 2, 2, 2, 2] and run.limit == 2
    calls.clear()
    np.testing.assert_array_equal(run(batch[:5]), batch[:5] * 2)
    assert calls == [2, 2, 1]  # the next batch starts at the size that fit


def test_backoff_raises_what_is_not_memory_and_memory_at_one_image():
    def broken(batch: np.ndarray) -> np.ndarray:
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError, match="a bug"):
        OomBackoff(broken)(np.zeros((4, 1)))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        OomBackoff(_oom_above(0, []))(np.zeros((4, 1)))


def test_engine_rows_are_the_same_when_the_device_runs_out_of_memory(tmp_path):
    from PIL import Image

    samples = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((4, 4, 3), i * 20, dtype=np.uint8)).save(path)
        samples.append(Sample(path=path, label=0))

    def prepare(sample: Sample) -> np.ndarray:
        return np.asarray(sample.load(), dtype=np.float32)[:1, :1, :1]

    calls: list[int] = []
    squeezed = compute_cached(
        samples, key="k", dim=1, prepare=prepare, compute=_oom_above(1, calls), batch_size=6, cache=False
    )
    roomy = compute_cached(samples, key="k", dim=1, prepare=prepare, compute=_oom_above(99, []), batch_size=6)
    np.testing.assert_array_equal(squeezed.vectors, roomy.vectors)
    assert max(calls) == 6 and calls.count(1) == 6


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda answering like a machine with one H200 (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H200")


def test_rows_record_device_gpu_name_and_precision(fake_gpu, monkeypatch):
    monkeypatch.delenv("DFZOO_DEVICE", raising=False)
    assert describe_device(None) == {"device": "cuda", "gpu": "NVIDIA H200", "precision": "float16-autocast"}
    assert describe_device("cuda:0")["gpu"] == "NVIDIA H200"
    assert describe_device("cpu") == {"device": "cpu", "gpu": "", "precision": "float32"}


def test_device_is_checked_against_the_machine_up_front(fake_gpu, monkeypatch):
    with pytest.raises(DeviceError, match="has 1 CUDA device"):
        pick_device("cuda:1")
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        pick_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        pick_device("cuda")


def test_channels_last_where_convolutions_dominate():
    import timm

    assert prefers_channels_last(timm.create_model("resnet10t", pretrained=False, num_classes=0))
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    assert not prefers_channels_last(vit)  # one convolution: its patch embedding
    _, channels_last = dev.place_module(torch.nn.Conv2d(3, 3, 1), torch.device("cpu"))
    assert not channels_last  # only on CUDA
    tensor = to_device(np.zeros((2, 3, 4, 4), dtype=np.float32), torch.device("cpu"), channels_last=True)
    assert tensor.is_contiguous(memory_format=torch.channels_last)
