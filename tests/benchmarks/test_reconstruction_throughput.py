"""Cost of the reconstruction detectors on this machine: network passes per image and images per second.

Run: ``.venv/bin/pytest tests/benchmarks/test_reconstruction_throughput.py --benchmark-enable --benchmark-only
-p no:randomly -s`` (``--benchmark-only`` overrides the ``--benchmark-skip`` in the project's addopts).

Passes are counted with forward hooks (rows seen by each network, divided by images scored), so the numbers
also check the algorithms' structure: AEROBLADE runs each autoencoder's encoder and decoder ``repeats``
times per image and the distance trunk once for the image plus once per autoencoder; DIRE runs its UNet
``2 * steps`` times per image (``steps`` to invert, ``steps`` to regenerate). Models are random-initialised
at the real architectures' sizes where that matters (``random:sd_kl_f8`` = Stable Diffusion's KL-f8 VAE,
``random:ddpm_cifar10_32`` = google/ddpm-cifar10-32's UNet), at small image sizes; the LPIPS_2 trunk uses
a random VGG16 checkpoint of the right shape (the compute is the same as with ImageNet weights). Scoring
runs with the cache off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dfzoo
from dfzoo.detector import RunContext
from tests.synthetic import smooth_image

CONTEXT = RunContext(progress=False, cache=False, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def threads():
    torch.set_num_threads(2)


class PassCounter:
    """Counts the rows (images) each hooked module processes."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.handles: list = []

    def watch(self, name: str, module) -> None:
        self.rows.setdefault(name, 0)

        def hook(_module, inputs, _output) -> None:
            self.rows[name] += int(inputs[0].shape[0])

        self.handles.append(module.register_forward_hook(hook))

    def per_image(self, images: int) -> dict[str, float]:
        return {name: rows / images for name, rows in self.rows.items()}

    def reset(self) -> None:
        self.rows = dict.fromkeys(self.rows, 0)


def write_images(folder: Path, n: int, size: int) -> list[dfzoo.Sample]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        Image.fromarray(smooth_image(rng, size)).save(folder / f"{i:03d}.png")
        samples.append(dfzoo.Sample(path=folder / f"{i:03d}.png", label=-1))
    return samples


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path | str]:
    from tests.tiny_models import partial_vgg16, tiny_autoencoder, tiny_unet

    root = tmp_path_factory.mktemp("recon-bench")
    partial_vgg16(root / "weights" / "vgg16_imagenet" / "vgg16-397923af.pth")
    return {
        "weights": root / "weights",
        "sd_vae": "random:sd_kl_f8",
        "cifar_unet": "random:ddpm_cifar10_32",
        "tiny_vae_a": tiny_autoencoder(root / "tiny_a", seed=0),
        "tiny_vae_b": tiny_autoencoder(root / "tiny_b", 1),
        "tiny_unet": tiny_unet(root / "tiny_unet", train_steps=1),
    }


AEROBLADE = {  # label: (vaes, image size, images, params)
    "sd_vae_arch@64px,lpips_vgg_2": (["sd_vae"], 64, 4, {}),
    "2x tiny_vae@32px,lpips_vgg_2,repeats=2": (["tiny_vae_a", "tiny_vae_b"], 32, 16, {"repeats": 2}),
    "tiny_vae@32px,effnet_lite0_s2": (["tiny_vae_a"], 32, 16, {"distance": "effnet_lite0_s2"}),
}


@pytest.mark.parametrize("label", list(AEROBLADE))
def test_aeroblade_throughput(benchmark, label, models, tmp_path, monkeypatch):
    monkeypatch.setenv("DFZOO_WEIGHTS_DIR", str(models["weights"]))
    vaes, size, n, params = AEROBLADE[label]
    samples = write_images(tmp_path, n, size)
    detector = dfzoo.load_detector(
        "aeroblade", vaes=[str(models[v]) for v in vaes], batch_size=4, fallback=None, **params
    ).setup(CONTEXT)
    detector.score(samples[:2])  # warm-up: model loading, allocator
    _, autoencoders, distance = detector._build()
    counter = PassCounter()
    for i, autoencoder in enumerate(autoencoders):
        counter.watch(f"vae{i}.encoder", autoencoder.model.encoder)
        counter.watch(f"vae{i}.decoder", autoencoder.model.decoder)
    counter.watch(f"distance[{distance.name}]", distance.entry)
    rounds = 2
    benchmark.pedantic(lambda: detector.score(samples), rounds=rounds, warmup_rounds=0)
    passes = counter.per_image(n * rounds)
    repeats = int(detector.params["repeats"])
    for i in range(len(autoencoders)):
        assert passes[f"vae{i}.encoder"] == passes[f"vae{i}.decoder"] == repeats
    assert passes[f"distance[{distance.name}]"] == 1 + len(autoencoders)
    rate = n / benchmark.stats.stats.mean
    benchmark.extra_info.update({"images_per_second": rate, "passes_per_image": passes})
    print(f"\naeroblade {label}: {rate:.2f} images/s; passes per image {passes}")


DIRE = {  # label: (unet, image size, images, steps)
    "ddpm_cifar10_arch@32px,steps=2": ("cifar_unet", 32, 2, 2),
    "tiny_unet@16px,steps=5": ("tiny_unet", 16, 16, 5),
}


@pytest.mark.parametrize("label", list(DIRE))
def test_dire_map_throughput(benchmark, label, models, tmp_path):
    unet, size, n, steps = DIRE[label]
    samples = write_images(tmp_path, n, size)
    detector = dfzoo.load_detector(
        "dire", unet=str(models[unet]), steps=steps, pretrained=False, dire_batch_size=8
    ).setup(CONTEXT)
    detector.dire_maps(samples[:1])  # warm-up
    counter = PassCounter()
    counter.watch("unet", detector.engine().unet)
    rounds = 2
    benchmark.pedantic(lambda: detector.dire_maps(samples), rounds=rounds, warmup_rounds=0)
    passes = counter.per_image(n * rounds)
    assert passes["unet"] == 2 * steps
    rate = n / benchmark.stats.stats.mean
    at_20 = rate * steps / 20
    benchmark.extra_info.update(
        {"images_per_second": rate, "passes_per_image": passes, "images_per_second_at_20_steps_estimate": at_20}
    )
    print(
        f"\ndire {label}: {rate:.3f} images/s ({at_20:.3f} at the paper's 20 steps, by UNet passes); "
        f"passes per image {passes}"
    )
