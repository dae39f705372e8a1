"""Shared machinery of the reconstruction-based detectors (AEROBLADE, DIRE).

* diffusers models by weights name, local folder or Hugging Face repo id, resolved offline-first through
  :func:`dfzoo.weights.resolve` so every model has a weights identity;
* the DDIM scheduler that travels with a diffusion UNet (or a recorded default when none does);
* images brought to a size the model accepts;
* per-sample results cached through the shared engine, :func:`dfzoo.cache.compute_cached` (which also
  batches images of one native size together).

Private to the built-in plugins (the leading underscore keeps it out of the plugin registry).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from PIL import Image

from dfzoo.data.sample import Sample
from dfzoo.plain import slug
from dfzoo.spec import WeightsSpec
from dfzoo.transforms import Normalisation, PreprocessPolicy
from dfzoo.weights import ResolvedWeights, WeightsNotFound, resolve

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(/[\w.\-]+)*$")
MINUS_ONE_ONE = Normalisation(size=0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


# -- weights ---------------------------------------------------------------------------------------------
SCHEDULER_FILES = ("scheduler_config.json", "scheduler/scheduler_config.json")


def hub_diffusers_weights(name: str, repo: str, summary: str, subfolder: str = "", licence: str = "") -> WeightsSpec:
    """A diffusers model folder on the Hugging Face hub (optionally a ``subfolder`` of a pipeline repo).

    ``find_local`` looks in the HF cache only (``local_files_only=True``); ``download`` fetches the config and
    weights of that folder alone (not the whole pipeline), plus the repo's scheduler config if it has one
    (a diffusion UNet needs its noise schedule; a few bytes otherwise).
    """
    prefix = f"{subfolder}/" if subfolder else ""
    patterns = (f"{prefix}config.json", *(prefix + f for f in WEIGHT_FILES), *SCHEDULER_FILES)
    where = f"{repo}" + (f" (subfolder {subfolder})" if subfolder else "")
    return WeightsSpec(
        name=name,
        summary=summary,
        library="diffusers",
        source=where,
        find_local=lambda: _hf_folder(repo, subfolder, patterns, local_only=True),
        download=lambda: _hf_folder(repo, subfolder, patterns, local_only=False),
        fetch_hint=(
            f'python -c "from huggingface_hub import snapshot_download; snapshot_download('
            f"'{repo}', allow_patterns={list(patterns)!r})\"  (or save_pretrained the model into "
            f"$DFZOO_WEIGHTS_DIR/{name}/)"
        ),
        licence=licence,
    )


@overload
def _hf_folder(repo: str, subfolder: str, patterns: tuple[str, ...], *, local_only: Literal[False]) -> Path: ...
@overload
def _hf_folder(repo: str, subfolder: str, patterns: tuple[str, ...], *, local_only: bool) -> Path | None: ...
def _hf_folder(repo: str, subfolder: str, patterns: tuple[str, ...], *, local_only: bool) -> Path | None:
    """The diffusers model folder of ``repo``, downloaded if needed; with ``local_only``, None when not cached."""
    from huggingface_hub import constants

    if local_only and not (Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}").is_dir():
        return None  # not cached; saves importing snapshot_download (a second) each time weights are listed
    from huggingface_hub import snapshot_download

    try:
        root = Path(snapshot_download(repo, allow_patterns=list(patterns), local_files_only=local_only))
    except Exception:
        if local_only:
            return None
        raise
    folder = root / subfolder if subfolder else root
    if is_model_folder(folder):
        return folder
    if local_only:
        return None
    raise FileNotFoundError(f"{repo}: no diffusers model (config.json + weights) under {subfolder or 'the root'}")


def is_model_folder(folder: Path) -> bool:
    """A diffusers ``save_pretrained`` folder: ``config.json`` plus a weights file."""
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in WEIGHT_FILES)


RANDOM = "random:"
_KL_BLOCKS = {
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "block_out_channels": (8, 16),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 32,
}
#: Architectures that ``random:<name>`` builds randomly initialised (smoke tests, cost benchmarks).
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny_kl": ("AutoencoderKL", _KL_BLOCKS),
    "tiny_vq": ("VQModel", {**_KL_BLOCKS, "num_vq_embeddings": 16, "vq_embed_dim": 4}),
    "sd_kl_f8": (
        "AutoencoderKL",
        {
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2,
            "latent_channels": 4,
            "sample_size": 512,
        },
    ),
    "tiny_unet": (
        "UNet2DModel",
        {
            "sample_size": 32,
            "block_out_channels": (8, 16),
            "layers_per_block": 1,
            "down_block_types": ("DownBlock2D",) * 2,
            "up_block_types": ("UpBlock2D",) * 2,
            "norm_num_groups": 4,
        },
    ),
    "ddpm_cifar10_32": (
        "UNet2DModel",
        {
            "sample_size": 32,
            "block_out_channels": (128, 256, 256, 256),
            "layers_per_block": 2,
            "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        },
    ),
}


@dataclass(frozen=True)
class RandomModel:
    """``random:<arch>``: a named diffusers architecture, randomly initialised from a fixed seed.

    For smoke tests and cost benchmarks only; its identity says ``random-init`` so no result can pass it
    off as pretrained.
    """

    arch: str
    seed: int = 0

    @property
    def class_name(self) -> str:
        return ARCHITECTURES[self.arch][0]

    @property
    def config(self) -> dict[str, Any]:
        return {"_class_name": self.class_name, **ARCHITECTURES[self.arch][1]}

    @property
    def identity(self) -> str:
        from importlib.metadata import version

        return f"random-init:{self.arch}:seed={self.seed}:diffusers={version('diffusers')}"

    def build(self) -> Any:
        import diffusers
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = getattr(diffusers, self.class_name)(**ARCHITECTURES[self.arch][1])
        return model.eval().requires_grad_(False)


def resolve_model(ref: str, registry: Any = None) -> ResolvedWeights | RandomModel:
    """A model by weights name (e.g. ``"zoo_vae"``, ``"sd1_vae"``), local folder, hub id ``org/repo[/sub]``,
    or ``random:<arch>`` (one of :data:`ARCHITECTURES`, randomly initialised)."""
    from dfzoo.registry import current_registry

    if ref.startswith(RANDOM):
        arch = ref[len(RANDOM) :]
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r} in {ref!r}; known: {', '.join(ARCHITECTURES)}")
        return RandomModel(arch)
    registry = registry or current_registry()
    if ref in registry.names("weights"):
        return resolve(registry.weights(ref))
    path = Path(ref).expanduser()
    if path.exists():
        return resolve(
            WeightsSpec(name=_model_slug(path.name), summary=f"local model {path}", library="diffusers"), path
        )
    if HUB_ID.match(ref):
        parts = ref.split("/")
        repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
        return resolve(hub_diffusers_weights(_model_slug(ref), repo, f"hub model {ref}", sub))
    raise WeightsNotFound(
        f"model {ref!r} is neither weights known to dfzoo, an existing folder, nor a Hugging Face "
        f"repo id (org/name[/subfolder]); known weights: {', '.join(registry.names('weights'))}"
    )


def model_folder(path: Path, subfolders: Sequence[str]) -> Path:
    """The folder holding the model's ``config.json``: ``path`` itself or one of its ``subfolders``
    (so a whole pipeline folder works too)."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    for sub in subfolders:
        if (path / sub / "config.json").is_file():
            return path / sub
    raise FileNotFoundError(f"{path}: no diffusers config.json here or in {', '.join(f'{s}/' for s in subfolders)}")


def load_diffusers_model(path: Path, allowed: Sequence[str], subfolders: Sequence[str] = ()) -> tuple[Any, Path]:
    """Load the diffusers model class named in ``config.json`` (one of ``allowed``), offline."""
    folder = model_folder(path, subfolders)
    class_name = json.loads((folder / "config.json").read_text()).get("_class_name", "")
    if class_name not in allowed:
        raise ValueError(
            f"{folder} holds a {class_name or 'model of unknown class'}; expected one of {', '.join(allowed)}"
        )
    import diffusers

    model = getattr(diffusers, class_name).from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)
    return model.eval().requires_grad_(False), folder


@dataclass(frozen=True)
class SchedulerInfo:
    """Where a DDIM scheduler's configuration came from, and a hash of the configuration used."""

    source: str
    config_sha256: str

    @property
    def identity(self) -> str:
        return f"{self.source}@sha256:{self.config_sha256[:16]}"


def load_ddim_scheduler(folder: Path | None) -> tuple[Any, SchedulerInfo]:
    """A DDIM scheduler from the model's own config (``scheduler/`` beside or inside, or
    ``scheduler_config.json``), else diffusers' default DDIM with 1000 training steps, and say which."""
    from diffusers import DDIMScheduler

    candidates = []
    if folder is not None:
        folder = Path(folder)
        candidates = [
            folder / "scheduler" / "scheduler_config.json",
            folder / "scheduler_config.json",
            folder.parent / "scheduler" / "scheduler_config.json",
            folder.parent / "scheduler_config.json",
        ]
    for candidate in candidates:
        if candidate.is_file():
            config = json.loads(candidate.read_text())
            scheduler = _quiet(partial(DDIMScheduler.from_config, config))
            source = f"{config.get('_class_name', 'scheduler')} config {candidate.parent.name}/{candidate.name}"
            break
    else:
        scheduler = DDIMScheduler(num_train_timesteps=1000)
        source = "default DDIMScheduler(num_train_timesteps=1000) (no scheduler config found)"
    digest = hashlib.sha256(json.dumps(dict(scheduler.config), sort_keys=True, default=str).encode()).hexdigest()
    return scheduler, SchedulerInfo(source, digest)


def _quiet(build: Callable[[], Any]) -> Any:
    """diffusers logs every config key a scheduler class does not use (e.g. DDPM's ``variance_type``)."""
    from diffusers.utils import logging as dlogging

    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        return build()
    finally:
        dlogging.set_verbosity(level)


# -- images ----------------------------------------------------------------------------------------------
def prepare_for_model(sample: Sample, *, policy: PreprocessPolicy, factor: int, size: int | None = None) -> np.ndarray:
    """Decode (with the view's perturbation) and bring one image to float32 CHW in [-1, 1] at a size divisible
    by ``factor``.

    With ``size`` (the model's fixed input) or else ``policy.size`` set, the policy's geometry (resize or
    centre crop) gives a square image of that size; otherwise the image keeps its native size, centre-cropped
    to the nearest multiple of ``factor`` (reflect-padded up to ``factor`` if smaller): nothing is resampled.
    """
    image = sample.load()
    target = size or policy.size
    if target:
        if target % factor:
            raise ValueError(f"preprocess size {target} is not a multiple of the model's factor {factor}")
        return policy.apply(
            image,
            Normalisation(
                size=target, mean=MINUS_ONE_ONE.mean, std=MINUS_ONE_ONE.std, interpolation=MINUS_ONE_ONE.interpolation
            ),
        )
    return to_minus_one_one(native_crop(image, factor))


def native_crop(image: Image.Image, factor: int) -> Image.Image:
    """Centre crop each side to a multiple of ``factor`` (sides shorter than ``factor`` are reflect-padded)."""
    width, height = image.size
    new_w, new_h = max(factor, width // factor * factor), max(factor, height // factor * factor)
    if (new_w, new_h) == (width, height):
        return image
    if width < new_w or height < new_h:
        array = np.asarray(image)
        pad_h, pad_w = max(0, new_h - height), max(0, new_w - width)
        mode: Literal["reflect", "edge"] = "reflect" if min(width, height) > max(pad_h, pad_w) else "edge"
        array = np.pad(array, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode=mode)
        image = Image.fromarray(array)
        width, height = image.size
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return image.crop((left, top, left + new_w, top + new_h))


def to_minus_one_one(image: Image.Image) -> np.ndarray:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def quantise(tensor: Any) -> Any:
    """A [-1, 1] tensor clamped and rounded to the 8-bit grid: a reconstruction as it would be saved."""
    return ((tensor.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def _model_slug(text: str) -> str:
    """A weights name for a local folder or hub id: lower case, the shared slug rule with ``_``."""
    return slug(text.lower(), fallback="model", replacement="_")
