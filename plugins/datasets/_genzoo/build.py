"""Build the zoo: cut real patches, train six generators, sample fakes, write images and a manifest.

The build is deterministic for a seed, cached under ``<cache>/zoo/<preset>-seed<seed>-v<version>/`` and
protected by a lock; ``manifest.json`` is written last, so a folder without it is an interrupted build and
is built again. It runs in a child process with pinned numerics (:mod:`.numerics`) so that the images are
the same on any x86 CPU; the manifest's ``content_sha256`` (of every image's pixels) is compared with the
reference build's (:mod:`.reference`) and ``reference_match`` records the outcome.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
import tomllib
import warnings
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.paths import cache_dir

from .numerics import PINNED, Numerics
from .photos import TEST_PHOTOS, TRAIN_PHOTOS, cut_patches
from .reference import ZooReferenceMismatch, compare_with_reference

log = logging.getLogger(__name__)
ZOO_VERSION = 3  # 3: built in pinned numerics (AVX2 kernels, MKL CNR, one thread), pixel checksums
MANIFEST = "manifest.json"

GENERATORS: dict[str, tuple[str, str]] = {  # name -> (family, how it makes images)
    "gan_tconv": ("gan", "DCGAN-style generator, transposed convolutions (checkerboard-prone upsampling)"),
    "gan_upsample": ("gan", "generator with nearest upsampling then 3x3 convolutions"),
    "diff_ddpm": ("diffusion", "diffusers UNet2DModel, DDPM ancestral sampling"),
    "diff_ddim": ("diffusion", "the same UNet2DModel, deterministic DDIM sampling (eta 0)"),
    "ae_vae": ("autoencoder", "diffusers AutoencoderKL decoder on latents from a Gaussian fitted to training latents"),
    "ae_plain": ("autoencoder", "plain conv autoencoder decoder on latents from a Gaussian fitted to training latents"),
}


@dataclass(frozen=True)
class ZooConfig:
    """Sizes and training budgets of one zoo build."""

    patch: int = 32
    real_per_split: int = 150
    fake_per_split: int = 80
    generator_pool: int = 2000  # train-photo patches the generators learn from
    gan_steps: int = 300
    gan_batch: int = 64
    ae_steps: int = 300
    ae_batch: int = 32
    diffusion_steps: int = 250
    diffusion_batch: int = 32
    ddpm_sampling_steps: int = 25
    ddim_sampling_steps: int = 15
    train_timesteps: int = 1000


def _presets() -> dict[str, ZooConfig]:
    """``default`` (ZooConfig's values) and the presets of ``presets.toml``, each a table of the fields it changes
    (a field ZooConfig lacks is a TypeError naming it)."""
    item = resources.files(__package__ or "dfzoo.plugins.datasets._genzoo") / "presets.toml"
    tables = tomllib.loads(item.read_text())
    return {"default": ZooConfig(), **{name: ZooConfig(**table) for name, table in tables.items()}}


PRESETS = _presets()


class ZooBuildError(RuntimeError):
    """A generator failed to learn (its loss did not fall), or the build was otherwise unusable."""


def zoo_dir(preset: str = "default", seed: int = 0, root: Path | None = None) -> Path:
    if preset not in PRESETS:
        raise ValueError(f"unknown zoo preset {preset!r}; presets: {', '.join(PRESETS)}")
    return (root or cache_dir() / "zoo") / f"{preset}-seed{seed}-v{ZOO_VERSION}"


def build_zoo(
    preset: str = "default", seed: int = 0, *, force: bool = False, root: Path | None = None, progress: bool = True
) -> Path:
    """Build the zoo (or return the cached build) and return its folder.

    The build runs in a child process with the pinned numerics (:mod:`.numerics`), which also leaves this
    process's torch state (RNG, threads, determinism) untouched for detectors trained next. A build whose
    images differ from the reference build of the same preset and seed warns once, here.
    """
    from filelock import FileLock

    from . import process

    folder = zoo_dir(preset, seed, root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / MANIFEST).exists() and not force:
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        staging = folder.with_name(folder.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        log.info("building the generator zoo (%s preset, seed %d) in %s", preset, seed, folder)
        process.run_build(staging, preset, seed, PINNED, progress)
        os.replace(staging, folder)
    manifest = load_manifest(folder)
    log.info(
        "zoo built in %.0f s: %d images, content sha256 %s",
        manifest["build_seconds"],
        len(manifest["samples"]),
        manifest["content_sha256"][:16],
    )
    warn_if_unlike_reference(manifest)
    return folder


def build_here(folder: Path, preset: str, seed: int, numerics: Numerics, progress: bool) -> None:
    """Build into ``folder`` in this process, which must have been started with ``numerics.environment()``
    (the child side of :func:`build_zoo`)."""
    in_effect = numerics.apply()
    _build(folder, PRESETS[preset], preset, seed, progress, in_effect)


def _build(folder: Path, config: ZooConfig, preset: str, seed: int, progress: bool, numerics: dict[str, Any]) -> None:
    import torch
    from tqdm.auto import tqdm

    from . import models, train

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    real_train, train_sources = cut_patches(TRAIN_PHOTOS, config.real_per_split, config.patch, rng)
    real_test, test_sources = cut_patches(TEST_PHOTOS, config.real_per_split, config.patch, rng)
    pool, _ = cut_patches(TRAIN_PHOTOS, config.generator_pool, config.patch, rng)
    data = train.to_tensor(pool)
    rows: list[dict[str, Any]] = []
    rows += _write(folder, "real", "real", "train", real_train)
    rows += _write(folder, "real", "real", "test", real_test)

    total = 2 * config.gan_steps + 2 * config.ae_steps + config.diffusion_steps
    bar = tqdm(total=total, desc="zoo: training generators", unit="step", disable=not progress)

    def advance() -> None:
        bar.update()

    curves: dict[str, dict] = {}
    count = 2 * config.fake_per_split
    timings: dict[str, float] = {}

    def seeded(offset: int) -> torch.Generator:
        torch.manual_seed(seed * 1000 + offset)
        return torch.Generator().manual_seed(seed * 1000 + offset)

    def emit(name: str, images: torch.Tensor, curve: train.LossCurve, began: float) -> None:
        if not curve.fell:
            raise ZooBuildError(f"zoo generator {name}: its training curve did not fall ({curve.values})")
        curves[name] = curve.as_dict()
        fakes = train.to_uint8(images)
        rows.extend(_write(folder, name, GENERATORS[name][0], "train", fakes[: config.fake_per_split]))
        rows.extend(_write(folder, name, GENERATORS[name][0], "test", fakes[config.fake_per_split :]))
        timings[name] = round(time.perf_counter() - began, 2)
        if progress:  # a line per generator with the time left at this pace (training steps as the unit of work)
            elapsed = time.perf_counter() - started
            left = elapsed * (total - bar.n) / max(bar.n, 1)
            bar.write(
                f"zoo: {name} done in {timings[name]:.0f} s ({len(timings)}/{len(GENERATORS)} generators); "
                f"{elapsed / 60:.1f} min so far, about {left / 60:.1f} min left",
                file=sys.stderr,
            )

    for offset, (name, make) in enumerate(
        (("gan_tconv", models.TConvGenerator), ("gan_upsample", models.UpsampleGenerator)), start=1
    ):
        began = time.perf_counter()
        gen_rng = seeded(offset)
        generator, critic = make(), models.Discriminator()
        bar.set_postfix_str(name)
        training = train.Training(data, config.gan_steps, config.gan_batch, gen_rng, advance)
        curve = train.train_gan(generator, critic, training)
        emit(name, train.sample_gan(generator, count, gen_rng), curve, began)

    began = time.perf_counter()
    from diffusers import DDIMScheduler, DDPMScheduler

    gen_rng = seeded(3)
    unet = models.make_unet(config.patch)
    ddpm: Any = DDPMScheduler(num_train_timesteps=config.train_timesteps)  # diffusers' configs are untyped
    bar.set_postfix_str("diffusion UNet")
    training = train.Training(data, config.diffusion_steps, config.diffusion_batch, gen_rng, advance)
    curve = train.train_diffusion(unet, ddpm, training)
    emit("diff_ddpm", train.sample_diffusion(unet, ddpm, count, config.ddpm_sampling_steps, gen_rng), curve, began)
    began = time.perf_counter()
    ddim = DDIMScheduler.from_config(ddpm.config)
    emit(
        "diff_ddim",
        train.sample_diffusion(unet, ddim, count, config.ddim_sampling_steps, gen_rng, eta=0.0),
        curve,
        began,
    )
    unet.float().save_pretrained(folder / "models" / "zoo_unet")  # detectors run these models in float32
    ddpm.save_pretrained(folder / "models" / "zoo_unet")  # scheduler_config.json beside the UNet

    for offset, (name, variational) in enumerate((("ae_vae", True), ("ae_plain", False)), start=4):
        began = time.perf_counter()
        gen_rng = seeded(offset)
        model: Any = models.make_vae(config.patch) if variational else models.PlainAutoencoder()
        bar.set_postfix_str(name)
        training = train.Training(data, config.ae_steps, config.ae_batch, gen_rng, advance)
        curve = train.train_autoencoder(model, training, kl_weight=1e-2 if variational else 0.0)
        latents = train.encode_latents(model, data, variational)
        images = train.decode(model, train.sample_latent_gaussian(latents, count, gen_rng), variational)
        emit(name, images, curve, began)
        if variational:
            model.float().save_pretrained(folder / "models" / "zoo_vae")
    bar.close()

    checksum, versions = content_checksum(rows), _versions()
    reference = compare_with_reference(preset, seed, ZOO_VERSION, checksum)
    manifest = {
        "name": "zoo",
        "version": ZOO_VERSION,
        "preset": preset,
        "seed": seed,
        "config": asdict(config),
        "content_sha256": checksum,
        "reference_match": reference["match"],
        "reference": reference,
        "generators": {
            name: {"family": family, "method": how, "training_curve": curves[name], "seconds": timings[name]}
            for name, (family, how) in GENERATORS.items()
        },
        "photos": {"train": sorted(set(train_sources)), "test": sorted(set(test_sources))},
        "photo_patches": {"train": _count(train_sources), "test": _count(test_sources)},
        "samples": rows,
        "build_seconds": round(time.perf_counter() - started, 1),
        "versions": versions,
        "numerics": numerics,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)


def _write(folder: Path, generator: str, family: str, split: str, images: np.ndarray) -> list[dict[str, Any]]:
    from PIL import Image

    out = folder / "images" / generator / split
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, pixels in enumerate(images):
        if pixels.dtype != np.uint8:
            raise ZooBuildError(f"zoo images must be quantised to uint8 before saving, got {pixels.dtype}")
        path = out / f"{index:05d}.png"
        Image.fromarray(pixels).save(path, optimize=False)
        rows.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "label": int(generator != "real"),
                "generator": generator,
                "family": family,
                "split": split,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "pixels_sha256": pixels_digest(pixels),
            }
        )
    return rows


def pixels_digest(pixels: np.ndarray) -> str:
    """sha256 of an image's uint8 pixels and shape: unlike the PNG file's hash, independent of the zlib
    that compressed it."""
    digest = hashlib.sha256("x".join(map(str, pixels.shape)).encode() + b"\n")
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def content_checksum(rows: list[dict[str, Any]]) -> str:
    """One sha256 over every image's path, label, generator, split and pixels: the identity of a build."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda row: row["path"]):
        digest.update(
            f"{row['path']}\t{row['label']}\t{row['generator']}\t{row['split']}\t{row['pixels_sha256']}\n".encode()
        )
    return digest.hexdigest()


def warn_if_unlike_reference(manifest: dict[str, Any]) -> None:
    """Warn (once per build) when the build's images differ from the reference build's."""
    reference = manifest.get("reference") or {}
    if reference.get("match") is not False:
        return
    changed = ", ".join(
        f"{name} {version} (reference {reference['versions'].get(name)})"
        for name, version in manifest["versions"].items()
        if version != reference["versions"].get(name)
    )
    cause = (
        f"package versions differ from the reference build's: {changed}"
        if changed
        else f"package versions are the reference build's, so this CPU or platform ({manifest.get('cpu')}) "
        f"computes differently from the reference's ({reference.get('cpu')})"
    )
    warnings.warn(
        f"the zoo ({manifest['preset']}, seed {manifest['seed']}) built here DIFFERS from the reference build "
        f"(content sha256 {manifest['content_sha256'][:16]} vs {reference['content_sha256'][:16]}): its images "
        f"are not the ones the committed leaderboard was computed on, so leaderboard numbers on this zoo are per "
        f"machine; {cause}.",
        ZooReferenceMismatch,
        stacklevel=3,
    )


def _cpu_name() -> str:
    """The CPU model (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _count(sources: list[str]) -> dict[str, int]:
    return {name: sources.count(name) for name in sorted(set(sources))}


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in ("torch", "diffusers", "numpy", "pillow", "scikit-image", "scikit-learn", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def load_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text())
