"""The built-in generator zoo, on its tiny preset (a few seconds of real training)."""
from __future__ import annotations

import pytest
import torch

import dfzoo
from dfzoo.plugins._genzoo.build import GENERATORS, MANIFEST, build_zoo, load_manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_zoo("tiny", seed=0, root=tmp_path_factory.mktemp("zoo"), progress=False)


def test_tiny_build_has_every_generator_family_and_split(tiny):
    from dfzoo.plugins.generator_zoo import load_zoo
    dataset = load_zoo(root=tiny.parent, preset="tiny")
    assert dataset.generators() == sorted(GENERATORS)
    assert dataset.families == {"gan_tconv": "gan", "gan_upsample": "gan", "diff_ddpm": "diffusion",
                                "diff_ddim": "diffusion", "ae_vae": "autoencoder", "ae_plain": "autoencoder"}
    for generator in [*GENERATORS, "real"]:
        splits = {s.split for s in dataset.samples if s.generator == generator}
        assert splits == {"train", "test"}, generator
    assert all(s.path.exists() for s in dataset.samples)
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


def test_same_seed_gives_identical_images_and_an_interrupted_build_is_redone(tiny, tmp_path):
    folder = tmp_path / tiny.name
    (folder / "images").mkdir(parents=True)  # a build that died before writing its manifest
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = build_zoo("tiny", seed=0, root=tmp_path, progress=False)
    assert again == folder and (folder / MANIFEST).exists()
    # torch's global RNG and determinism flag are left as they were (detectors train next in `dfzoo run`)
    assert torch.equal(torch.rand(3), expected) and not torch.are_deterministic_algorithms_enabled()
    hashes = lambda f: [(row["path"], row["sha256"]) for row in load_manifest(f)["samples"]]  # noqa: E731
    assert hashes(again) == hashes(tiny)


def test_cached_build_is_reused(tiny):
    stamp = (tiny / MANIFEST).stat().st_mtime_ns
    assert build_zoo("tiny", seed=0, root=tiny.parent, progress=False) == tiny
    assert (tiny / MANIFEST).stat().st_mtime_ns == stamp


def test_zoo_models_resolve_by_name_and_load_with_diffusers(tiny, registry, monkeypatch):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DModel

    from dfzoo.plugins._genzoo import build
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
    assert "gan_tconv" in out and "->" in out
    assert dfzoo.load_dataset("zoo", preset="tiny").generators() == sorted(GENERATORS)
