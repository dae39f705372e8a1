"""AEROBLADE: autoencoder reconstruction distance, with tiny random-initialised diffusers autoencoders.

Random initialisation is enough for the central property (checked, not assumed): a random decoder maps
every latent into a narrow range of images, so an image already in that range (``decode(encode(x))``) is
reconstructed far more closely than the image it came from, which is exactly the paper's premise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dfzoo
from dfzoo.transforms import make_perturbation
from dfzoo.weights import WeightsNotFound
from tests.synthetic import smooth_image
from tests.tiny_models import partial_vgg16, tiny_autoencoder

SIZE = 32


def reconstruct_files(vae_folder: Path, sources: list[Path], out: Path) -> list[Path]:
    """``decode(encode(x))`` of each file (posterior mean), saved as 8-bit PNG: images "generated" by the AE."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_folder).eval()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sources:
        x = torch.from_numpy(np.asarray(Image.open(source), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            y = vae.decode(vae.encode(x).latent_dist.mean).sample[0]
        pixels = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(out / source.name)
        paths.append(out / source.name)
    return paths


def write_images(folder: Path, n: int, seed: int = 0, size: int = SIZE) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        Image.fromarray(smooth_image(rng, size)).save(folder / f"{i:03d}.png")
        paths.append(folder / f"{i:03d}.png")
    return paths


def as_samples(paths: list[Path], label: int = -1) -> list[dfzoo.Sample]:
    return [dfzoo.Sample(path=p, label=label) for p in paths]


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_autoencoder(tmp_path_factory.mktemp("vae") / "kl", seed=0)


@pytest.fixture(autouse=True)
def no_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty torch.hub folder: the VGG16 trunk is never present unless a test puts it there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def detector(registry, **params):
    det = dfzoo.load_detector("aeroblade", registry=registry, **params)
    return det.setup(dfzoo.RunContext(progress=False, cache=False, device="cpu"))


def test_registered_with_paper_weights(registry):
    assert "aeroblade" in registry.names("detector")
    assert not registry.detector("aeroblade").trainable
    needed = registry.weights_needed("aeroblade", {"vaes": ["sd1_vae", "sd2_vae", "kandinsky21_movq"]})
    assert needed == ["sd1_vae", "sd2_vae", "kandinsky21_movq"]
    for name in ("vgg16_imagenet", "lpips_vgg_lin"):
        assert name in registry.names("weights")


def test_hub_autoencoder_missing_offline_fails_cleanly(registry):
    det = detector(registry, vaes=["sd1_vae"])
    with pytest.raises(WeightsNotFound, match="sd1_vae") as error:
        det.describe()
    assert "snapshot_download" in str(error.value) and "CompVis/stable-diffusion-v1-1" in str(error.value)
    from dfzoo.plugins.detectors._reconstruction import resolve_model

    with pytest.raises(WeightsNotFound, match=r"CompVis/stable-diffusion-v1-4 \(subfolder vae\)"):
        resolve_model("CompVis/stable-diffusion-v1-4/vae", registry)
    with pytest.raises(WeightsNotFound, match="neither weights known to dfzoo"):
        resolve_model("no_such_vae", registry)


def test_reconstructed_image_scores_as_more_generated(registry, vae_dir, tmp_path):
    originals = write_images(tmp_path / "orig", 6)
    passed = reconstruct_files(vae_dir, originals, tmp_path / "rec")
    det = detector(registry, vaes=[str(vae_dir)])
    before, after = det.score(as_samples(originals)), det.score(as_samples(passed))
    assert np.all(np.isfinite(before)) and np.all(np.isfinite(after))
    assert np.all(after > before), (before, after)  # higher = more likely generated


def test_lpips_missing_offline_falls_back_and_records_it(registry, vae_dir, tmp_path):
    det = detector(registry, vaes=[str(vae_dir)])  # default distance lpips_vgg_2, VGG16 trunk not on disk
    info = det.describe()
    assert info["distance"] == "effnet_lite0_s2"
    assert info["distance_requested"] == "lpips_vgg_2"
    assert "vgg16_imagenet" in info["distance_fallback_reason"]
    assert info["distance_weights"][0].startswith("efficientnet_lite0_in1k@sha256:")
    det.score(as_samples(write_images(tmp_path / "img", 1)))
    saved = det.save(tmp_path / "saved")
    meta = json.loads((saved / "dfzoo-detector.json").read_text())
    assert meta["describe"]["distance"] == "effnet_lite0_s2"

    strict = detector(registry, vaes=[str(vae_dir)], fallback=None)
    with pytest.raises(WeightsNotFound) as error:
        strict.describe()
    message = str(error.value)
    assert "vgg16_imagenet" in message and "vgg16-397923af.pth" in message and "torchvision" in message


def test_lpips2_matches_the_lpips_package(registry, vae_dir, tmp_path, monkeypatch):
    import lpips
    import torch

    from dfzoo.plugins.detectors._aeroblade_distances import build_distance

    weights_dir = tmp_path / "weights"
    monkeypatch.setenv("DFZOO_WEIGHTS_DIR", str(weights_dir))
    state = partial_vgg16(weights_dir / "vgg16_imagenet" / "vgg16-397923af.pth")
    det = detector(registry, vaes=[str(vae_dir)])
    plan = det.plan()
    assert plan.distance == "lpips_vgg_2" and not plan.fallback_reason
    assert [w.name for w in plan.distance_weights] == ["vgg16_imagenet", "lpips_vgg_lin"]
    assert "distance_requested" not in det.describe()

    ours = build_distance("lpips_vgg_2", plan.distance_weights, torch.device("cpu"), registry)
    reference = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()
    reference.net.load_state_dict(
        {f"slice{1 if int(k.split('.')[1]) < 4 else 2}.{k.split('.', 1)[1]}": v for k, v in state.items()}, strict=False
    )
    rng = np.random.default_rng(1)
    a, b = (torch.from_numpy(rng.uniform(-1, 1, (2, 3, SIZE, SIZE)).astype(np.float32)) for _ in range(2))
    with torch.no_grad():
        _, per_layer = reference(a, b, retPerLayer=True)
        mine = ours.maps(ours.features(a), ours.features(b))[0].mean(dim=(1, 2, 3))
    torch.testing.assert_close(mine, per_layer[1].flatten(), rtol=1e-4, atol=1e-6)


def test_multiple_autoencoders_take_the_minimum(registry, vae_dir, tmp_path):
    vq_dir = tiny_autoencoder(tmp_path / "vq", seed=1, kind="vq")
    samples = as_samples(write_images(tmp_path / "img", 4))
    both = detector(registry, vaes=[str(vae_dir), str(vq_dir)], distance="l2")
    distances = both.distances(samples)
    assert distances.shape == (4, 2) and np.all(np.isfinite(distances))
    assert not np.allclose(distances[:, 0], distances[:, 1])
    np.testing.assert_allclose(both.score(samples), -distances.min(axis=1))
    alone = [detector(registry, vaes=[v], distance="l2").score(samples) for v in (str(vae_dir), str(vq_dir))]
    np.testing.assert_allclose(both.score(samples), np.maximum(*alone), rtol=1e-6)
    assert both.describe()["vae_classes"] == ["AutoencoderKL", "VQModel"]
    assert len(set(both.describe()["vaes"])) == 2


def test_repeats_and_latent_mode_match_a_direct_computation(registry, vae_dir, tmp_path):
    import torch
    from diffusers import AutoencoderKL

    paths = write_images(tmp_path / "img", 2)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()

    def ae(x):
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
        return ((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1

    x = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for p in paths]
    )
    with torch.no_grad():
        once, twice = ae(x), ae(ae(x))
    for repeats, reconstruction in ((1, once), (2, twice)):
        expected = (x - reconstruction).pow(2).mean(dim=(1, 2, 3)).numpy()
        det = detector(registry, vaes=[str(vae_dir)], distance="l2", latent="mode", repeats=repeats)
        np.testing.assert_allclose(det.distances(as_samples(paths))[:, 0], expected, rtol=1e-4)


def test_patch_max_matches_a_direct_computation_and_sees_local_edits(registry, vae_dir, tmp_path):
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL

    originals = write_images(tmp_path / "orig", 4, seed=3)
    passed = reconstruct_files(vae_dir, originals, tmp_path / "rec")
    spliced = []
    rng = np.random.default_rng(4)
    # an 8x8 patch of fine texture pasted into each generated image
    for original, generated in zip(originals, passed, strict=True):
        pixels = np.asarray(Image.open(generated)).copy()
        pixels[8:16, 8:16] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"splice-{original.name}")
        spliced.append(tmp_path / f"splice-{original.name}")
    common = dict(vaes=[str(vae_dir)], distance="l2", latent="mode")
    patch_max = detector(registry, spatial="max", patch_size=8, **common)
    mean = detector(registry, **common)

    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    x = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for p in spliced]
    )
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
    y = ((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
    error_map = (x - y).pow(2).mean(dim=1, keepdim=True)
    expected = F.avg_pool2d(error_map, 8).amax(dim=(1, 2, 3)).numpy()
    got = patch_max.distances(as_samples(spliced))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert np.all(got > mean.distances(as_samples(spliced))[:, 0])  # the worst patch exceeds the average
    assert np.all(got > patch_max.distances(as_samples(passed))[:, 0])

    whole = detector(registry, spatial="max", patch_size=64, **common)  # one patch = the whole image
    np.testing.assert_allclose(whole.distances(as_samples(passed)), mean.distances(as_samples(passed)), rtol=1e-4)
    assert patch_max.describe()["patch_size"] == 8 and "patch_size" not in mean.describe()


def test_undecodable_is_nan_and_native_sizes_mix(registry, vae_dir, tmp_path):
    good = write_images(tmp_path / "a", 2) + write_images(tmp_path / "b", 1, size=40)
    odd = tmp_path / "odd.png"
    Image.fromarray(smooth_image(np.random.default_rng(9), 37)).save(odd)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    det = detector(registry, vaes=[str(vae_dir)], distance="l2")
    scores = det.score(as_samples([good[0], broken, good[2], odd, good[1]]))
    assert np.isnan(scores[1]) and np.all(np.isfinite(scores[[0, 2, 3, 4]]))
    assert 1 in det.last_errors


def test_native_crop_and_policy_sizes():
    from dfzoo.plugins.detectors._reconstruction import native_crop, prepare_for_model
    from dfzoo.transforms import PreprocessPolicy

    image = Image.fromarray(smooth_image(np.random.default_rng(0), 64)).crop((0, 0, 50, 37))
    assert native_crop(image, 8).size == (48, 32)
    assert native_crop(image.crop((0, 0, 5, 37)), 8).size == (8, 32)
    sample = dfzoo.Sample.from_image(image)
    assert prepare_for_model(sample, policy=PreprocessPolicy(), factor=8).shape == (3, 32, 48)
    array = prepare_for_model(sample, policy=PreprocessPolicy("center_crop", 32), factor=8)
    assert array.shape == (3, 32, 32) and array.min() >= -1 and array.max() <= 1
    fixed = prepare_for_model(sample, policy=PreprocessPolicy("center_crop", 32), factor=8, size=16)
    assert fixed.shape == (3, 16, 16)  # a model's fixed input size wins over the policy's size
    with pytest.raises(ValueError, match="multiple"):
        prepare_for_model(sample, policy=PreprocessPolicy("resize", 30), factor=8)


def test_perturbation_and_cache(registry, vae_dir, tmp_path, monkeypatch):
    from dfzoo.plugins.detectors.aeroblade import Aeroblade

    samples = as_samples(write_images(tmp_path / "img", 3))
    det = dfzoo.load_detector("aeroblade", registry=registry, vaes=[str(vae_dir)], distance="l2")
    det.setup(dfzoo.RunContext(progress=False, device="cpu"))
    first = det.score(samples)
    calls = []
    original = Aeroblade._distances_batch
    monkeypatch.setattr(Aeroblade, "_distances_batch", lambda self, a: calls.append(len(a)) or original(self, a))
    np.testing.assert_array_equal(det.score(samples), first)
    assert calls == []  # every distance came from the cache
    blurred = det.score([s.view(make_perturbation("blur:sigma=1.5", registry)) for s in samples])
    assert sum(calls) == 3 and not np.allclose(blurred, first)


def test_random_architectures_are_labelled_random(registry, tmp_path):
    det = detector(registry, vaes=["random:tiny_kl", "random:tiny_vq"], distance="l2")
    info = det.describe()
    assert info["vae_classes"] == ["AutoencoderKL", "VQModel"]
    assert all(v.startswith("random-init:tiny_") for v in info["vaes"])
    scores = det.score(as_samples(write_images(tmp_path, 2)))
    assert np.all(np.isfinite(scores))
    with pytest.raises(ValueError, match="unknown architecture"):
        detector(registry, vaes=["random:nope"]).describe()
    with pytest.raises(ValueError, match="not an autoencoder"):
        detector(registry, vaes=["random:tiny_unet"], distance="l2").score(as_samples(write_images(tmp_path, 1)))


def test_each_distance_name_has_its_class_and_unknown_names_fail_clearly():
    import torch

    from dfzoo.plugins.detectors._aeroblade_distances import (
        DISTANCES,
        EffnetStride2,
        LpipsVgg,
        PixelL2,
        build_distance,
        distance_class,
    )

    assert {distance_class(name) for name in DISTANCES} == {LpipsVgg, EffnetStride2, PixelL2}
    with pytest.raises(ValueError, match="unknown distance 'ssim'"):
        distance_class("ssim")
    pixel = build_distance("l2", [], torch.device("cpu"), registry=None)
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[1] += 0.5
    [same, moved] = pixel.maps(pixel.features(x), pixel.features(y))[0].mean(dim=(1, 2, 3))
    assert same == 0 and moved == pytest.approx(0.25)
