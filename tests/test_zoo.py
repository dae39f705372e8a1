"""The built-in generator zoo, on its tiny preset (a few seconds of real training)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import dfzoo
from dfzoo.plugins.datasets._genzoo.build import (
    GENERATORS,
    MANIFEST,
    ZOO_VERSION,
    ZooBuildError,
    build_zoo,
    content_checksum,
    load_manifest,
    pixels_digest,
    warn_if_unlike_reference,
)
from dfzoo.plugins.datasets._genzoo.numerics import PINNED, Numerics
from dfzoo.plugins.datasets._genzoo.reference import REFERENCE_BUILDS, ZooReferenceMismatch, compare_with_reference


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_zoo("tiny", seed=0, root=tmp_path_factory.mktemp("zoo"), progress=False)


def test_tiny_build_has_every_generator_family_and_split(tiny):
    from dfzoo.plugins.datasets.generator_zoo import load_zoo

    dataset = load_zoo(root=tiny.parent, preset="tiny")
    assert dataset.generators() == sorted(GENERATORS)
    assert dataset.families == {
        "gan_tconv": "gan",
        "gan_upsample": "gan",
        "diff_ddpm": "diffusion",
        "diff_ddim": "diffusion",
        "ae_vae": "autoencoder",
        "ae_plain": "autoencoder",
    }
    for generator in [*GENERATORS, "real"]:
        splits = {s.split for s in dataset.samples if s.generator == generator}
        assert splits == {"train", "test"}, generator
    assert all(s.path.exists() for s in dataset.samples)
    assert dataset.metadata["content_sha256"] == load_manifest(tiny)["content_sha256"]
    recorded = REFERENCE_BUILDS[f"tiny-seed0-v{ZOO_VERSION}"]["content_sha256"]
    assert dataset.metadata["reference_match"] is (dataset.metadata["content_sha256"] == recorded)
    assert dataset.metadata["numerics"]["threads"] == PINNED.threads
    reals = [s for s in dataset.samples if s.label == 0]
    assert {s.generator for s in reals} == {"real"} and {s.family for s in reals} == {"real"}


def test_every_generator_really_learned(tiny):
    for name, info in load_manifest(tiny)["generators"].items():
        curve = info["training_curve"]
        kept = curve["selected"][1] if curve["selected"] else curve["values"][-1]
        assert curve["fell"] and kept < curve["values"][0], name


def test_train_and_test_patches_come_from_different_photos(tiny):
    photos = load_manifest(tiny)["photos"]
    assert photos["train"] and photos["test"] and not set(photos["train"]) & set(photos["test"])


@pytest.mark.slow  # a second real build (~30-60 s on 2 cores)
def test_same_seed_gives_identical_images_on_another_simulated_cpu(tiny, tmp_path, monkeypatch):
    # "another CPU": other ATen kernels, MKL instruction set and branch, and thread count in the caller's
    # environment (unpinned, each of these changes every generator's images; measured)
    kernels = "default" if torch.backends.cpu.get_cpu_capability() != "DEFAULT" else "avx2"
    for name, value in {
        "ATEN_CPU_CAPABILITY": kernels,
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "MKL_CBWR": "AUTO",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    }.items():
        monkeypatch.setenv(name, value)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = build_zoo("tiny", seed=0, root=tmp_path, progress=False)
    # torch's global RNG and determinism flag are left as they were (detectors train next in `dfzoo run`)
    assert torch.equal(torch.rand(3), expected) and not torch.are_deterministic_algorithms_enabled()
    hashes = lambda f: [(row["path"], row["pixels_sha256"]) for row in load_manifest(f)["samples"]]
    assert hashes(again) == hashes(tiny)
    assert load_manifest(again)["content_sha256"] == load_manifest(tiny)["content_sha256"]


def test_an_interrupted_build_is_redone(tiny, tmp_path, monkeypatch):
    from dfzoo.plugins.datasets._genzoo import process

    builds = []

    def build_copy(folder, preset, seed, numerics, progress):  # the child process's work, without the compute
        builds.append((preset, seed, numerics))
        shutil.copytree(tiny, folder)

    monkeypatch.setattr(process, "run_build", build_copy)
    folder = tmp_path / tiny.name
    (folder / "images").mkdir(parents=True)  # a build that died before writing its manifest
    (tmp_path / (tiny.name + ".partial")).mkdir()  # and its staging folder
    assert build_zoo("tiny", seed=0, root=tmp_path, progress=False) == folder
    assert builds == [("tiny", 0, PINNED)] and (folder / MANIFEST).exists()
    assert not (tmp_path / (tiny.name + ".partial")).exists()
    assert build_zoo("tiny", seed=0, root=tmp_path, progress=False) == folder and len(builds) == 1


def test_build_runs_in_the_pinned_numerics_and_checksums_the_pixels_on_disk(tiny):
    manifest = load_manifest(tiny)
    numerics = manifest["numerics"]
    assert numerics["threads"] == PINNED.threads and numerics["dtype"] == PINNED.dtype and not numerics["onednn"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):  # x86 with AVX2: the pinned kernels ran
        assert numerics["aten_kernels"] == "AVX2"
    for row in manifest["samples"]:
        with Image.open(tiny / row["path"]) as image:
            pixels = np.asarray(image)
        assert pixels.dtype == np.uint8 and pixels_digest(pixels) == row["pixels_sha256"], row["path"]
    assert content_checksum(manifest["samples"]) == manifest["content_sha256"]
    recorded = REFERENCE_BUILDS[f"tiny-seed0-v{ZOO_VERSION}"]["content_sha256"]
    assert manifest["reference_match"] is (manifest["content_sha256"] == recorded)
    changed = [dict(row, pixels_sha256="0" * 64) if i == 0 else row for i, row in enumerate(manifest["samples"])]
    assert content_checksum(changed) != manifest["content_sha256"]  # one image changed, another checksum


def test_reference_comparison_and_its_warning():
    recorded = REFERENCE_BUILDS[f"tiny-seed0-v{ZOO_VERSION}"]
    assert compare_with_reference("tiny", 0, ZOO_VERSION, recorded["content_sha256"])["match"] is True
    different = compare_with_reference("tiny", 0, ZOO_VERSION, "f" * 64)
    assert different["match"] is False and different["content_sha256"] == recorded["content_sha256"]
    assert compare_with_reference("tiny", 7, ZOO_VERSION, "f" * 64)["match"] is None  # no reference: no claim
    manifest = {
        "preset": "tiny",
        "seed": 0,
        "content_sha256": "f" * 64,
        "reference": different,
        "cpu": "a CPU",
        "versions": {**recorded["versions"], "torch": "0.0.1"},
    }
    with pytest.warns(ZooReferenceMismatch, match="DIFFERS from the reference build.*per machine.*torch 0.0.1"):
        warn_if_unlike_reference(manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_unlike_reference({**manifest, "reference": recorded | {"match": True}})
        warn_if_unlike_reference({**manifest, "reference": {"match": None}})


def test_a_failing_build_process_is_one_clear_error(tmp_path):
    from dfzoo.plugins.datasets._genzoo import process

    with pytest.raises(ZooBuildError, match=r"zoo build \(nope, seed 0\) failed: KeyError: 'nope' \(traceback: "):
        process.run_build(tmp_path / "out", "nope", 0, PINNED, progress=False)
    assert "Traceback" in (tmp_path / "out.error.json").read_text()


def test_pinned_numerics_refuse_a_torch_imported_with_other_kernels():
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU runs ATen's default kernels already")
    with pytest.raises(RuntimeError, match="fresh process"):
        Numerics(cpu_capability="default").apply()  # torch here was imported without the pinned environment


def test_cached_build_is_reused(tiny):
    stamp = (tiny / MANIFEST).stat().st_mtime_ns
    assert build_zoo("tiny", seed=0, root=tiny.parent, progress=False) == tiny
    assert (tiny / MANIFEST).stat().st_mtime_ns == stamp


def test_zoo_models_resolve_by_name_and_load_with_diffusers(tiny, registry, monkeypatch):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DModel

    from dfzoo.plugins.datasets._genzoo import build
    from dfzoo.weights import WeightsNotFound, resolve

    with pytest.raises(WeightsNotFound, match="dfzoo data build-zoo"):
        resolve(registry.weights("zoo_vae"))  # nothing built in this test's cache: a clear error, no build
    monkeypatch.setattr(build, "zoo_dir", lambda preset="default", seed=0, root=None: tiny)
    vae = AutoencoderKL.from_pretrained(resolve(registry.weights("zoo_vae")).path)
    unet_path = resolve(registry.weights("zoo_unet")).path
    unet = UNet2DModel.from_pretrained(unet_path)
    scheduler = DDIMScheduler.from_pretrained(unet_path)
    assert vae.config.latent_channels == 4 and unet.config.sample_size == 32
    assert scheduler.config.num_train_timesteps == 100  # the tiny preset's horizon


def test_build_zoo_command_and_dataset_by_name(tiny, tmp_path, capsys, registry, monkeypatch):
    from dfzoo.cli import main

    monkeypatch.setenv("DFZOO_CACHE_DIR", str(tmp_path))
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / tiny.name).symlink_to(tiny)  # the cached build; the command must not rebuild it
    assert main(["data", "build-zoo", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "gan_tconv" in out and "->" in out and "content sha256 " in out
    assert dfzoo.load_dataset("zoo", preset="tiny").generators() == sorted(GENERATORS)
