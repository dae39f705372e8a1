"""The built-in generator zoo: a miniature of the field's problem that dfzoo builds with no network.

Reals are patches of photographs shipped inside installed packages (scikit-image, scikit-learn,
matplotlib), train and test from different photos. Fakes come from six small generators trained here on
the train photos: two GANs (transposed-convolution vs upsample+conv), one diffusion UNet sampled with DDPM
and with DDIM, and two autoencoders (a diffusers AutoencoderKL and a plain one). The trained VAE and UNet are
offered as weights ``zoo_vae`` and ``zoo_unet``, the offline defaults of AEROBLADE and DIRE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dfzoo import CommandSpec, DatasetSpec, WeightsSpec, hookimpl


def load_zoo(root: Path | None = None, preset: str = "default", seed: int = 0, progress: bool = True):
    """The zoo as a DatasetIndex, building it first when it is not in the cache."""
    from dfzoo.data.sample import DatasetIndex, Sample
    from dfzoo.plugins.datasets._genzoo.build import GENERATORS, ZOO_VERSION, build_zoo, load_manifest
    from dfzoo.plugins.datasets._genzoo.reference import compare_with_reference

    folder = build_zoo(preset, seed, root=Path(root) if root else None, progress=progress)
    manifest = load_manifest(folder)
    samples = [
        Sample(
            path=folder / row["path"],
            label=row["label"],
            generator=row["generator"],
            family=row["family"],
            split=row["split"],
        )
        for row in manifest["samples"]
    ]
    families = {name: family for name, (family, _) in GENERATORS.items()}
    metadata = {
        key: manifest[key]
        for key in (
            "preset",
            "seed",
            "config",
            "generators",
            "photos",
            "photo_patches",
            "build_seconds",
            "versions",
            "numerics",
            "cpu",
            "content_sha256",
        )
    }
    # compared on every load, not read from the manifest: a build made before its reference was recorded
    # (or against an older one) is judged against the reference this dfzoo holds
    metadata["reference_match"] = compare_with_reference(preset, seed, ZOO_VERSION, manifest["content_sha256"])["match"]
    return DatasetIndex(
        name=f"zoo-{preset}" if preset != "default" else "zoo",
        layout="zoo",
        root=folder,
        samples=samples,
        families=families,
        metadata=metadata,
    )


def _model_folder(name: str) -> Path | None:
    """A trained zoo model of the default build, if that build exists (never builds anything)."""
    from dfzoo.plugins.datasets._genzoo.build import MANIFEST, zoo_dir

    folder = zoo_dir("default", 0)
    return folder / "models" / name if (folder / MANIFEST).exists() else None


@hookimpl
def dfzoo_datasets():
    yield DatasetSpec(
        name="zoo",
        load=load_zoo,
        needs_root=False,
        summary="Built-in generator zoo: photo patches vs 2 GANs, 2 diffusion samplers, 2 autoencoders "
        "(built offline on first use)",
        params={"preset": "default", "seed": 0},
    )


@hookimpl
def dfzoo_weights():
    for name, summary in (
        ("zoo_vae", "the zoo's trained AutoencoderKL (32 px, latent 4x16x16)"),
        ("zoo_unet", "the zoo's trained UNet2DModel with its DDPM scheduler config (32 px)"),
    ):
        yield WeightsSpec(
            name=name,
            summary=summary,
            library="diffusers",
            source="dfzoo data build-zoo",
            find_local=lambda name=name: _model_folder(name),
            fetch_hint="dfzoo data build-zoo",
            licence="MIT (trained here)",
        )


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="rebuild even when a build is cached")
    parser.add_argument("--preset", default="default", help="default, tiny (seconds; for tests) or large")
    parser.add_argument("--seed", type=int, default=0)


def _build(args: argparse.Namespace) -> int:
    """Build (or rebuild with --force) the built-in generator zoo."""
    from dfzoo.plugins.datasets._genzoo.build import build_zoo, load_manifest

    folder = build_zoo(args.preset, args.seed, force=args.force)
    manifest = load_manifest(folder)
    print(
        f"zoo ({args.preset}, seed {args.seed}) at {folder}: {len(manifest['samples'])} images, "
        f"built in {manifest['build_seconds']} s"
    )
    match = {
        True: "matches the reference build",
        False: "DIFFERS from the reference build (numbers per machine)",
        None: "no reference build recorded",
    }[manifest["reference_match"]]
    print(f"  content sha256 {manifest['content_sha256']}: {match}")
    for name, info in manifest["generators"].items():
        curve = info["training_curve"]
        kept = curve["selected"][1] if curve.get("selected") else curve["values"][-1]
        print(f"  {name:13s} {info['family']:12s} {curve['name']}: {curve['values'][0]:.4f} -> {kept:.4f}")
    return 0


@hookimpl
def dfzoo_commands():
    yield CommandSpec(name="data build-zoo", add_arguments=_build_arguments, run=_build)
