"""Building blocks for backbone plugins: timm and open_clip models with weights resolved by dfzoo.

Plugins declare specs with :func:`timm_weights` / :func:`open_clip_weights` and build models with
:func:`timm_backbone` / :func:`open_clip_backbone`; heavy libraries are imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .features import TorchBackbone
from .spec import WeightsSpec
from .transforms import Normalisation
from .weights import ResolvedWeights, hub_unreachable_reason

HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin", "open_clip_model.safetensors")


def hf_cached_file(repo_id: str | Callable[[], str], filenames: tuple[str, ...] = HF_FILES) -> Path | None:
    """A file of ``repo_id`` already in the Hugging Face cache (never touches the network).

    ``repo_id`` may be a function that names the repo (open_clip's lookup imports torch): it is called only
    when the cache holds one of ``filenames`` at all. The cache folder is looked at before huggingface_hub's
    lookup is imported, so listing weights on a machine without them stays fast.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    folders = f"models--{repo_id.replace('/', '--')}" if isinstance(repo_id, str) else "models--*"
    cache = Path(constants.HF_HUB_CACHE)
    if not any(next(cache.glob(f"{folders}/snapshots/*/{name}"), None) for name in filenames):
        return None
    from huggingface_hub import try_to_load_from_cache

    repo_id = repo_id if isinstance(repo_id, str) else repo_id()
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def hf_download(repo_id: str, filenames: tuple[str, ...] = HF_FILES) -> Path:
    """Download the first of ``filenames`` that ``repo_id`` has (online only). Fails at once, saying why,
    when the hub cannot be reached (one short check per process: :func:`dfzoo.weights.hub_unreachable_reason`)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    unreachable = hub_unreachable_reason()
    if unreachable:
        raise FileNotFoundError(f"{repo_id}: not downloaded: {unreachable}")
    errors = []
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id, filename))
        except EntryNotFoundError as error:  # the repo has no such file: try the next name
            errors.append(f"{filename}: {type(error).__name__}")
    raise FileNotFoundError(f"{repo_id}: has none of {', '.join(errors)}")


def timm_weights(name: str, model: str, summary: str, licence: str = "") -> WeightsSpec:
    """Weights of timm model ``arch.tag`` (e.g. ``resnet50.a1_in1k``), found in the HF cache or downloaded."""
    repo = f"timm/{model}"
    return WeightsSpec(
        name=name,
        summary=summary,
        library="timm",
        source=repo,
        files=("model.safetensors", "pytorch_model.bin"),
        find_local=lambda: hf_cached_file(repo),
        download=lambda: hf_download(repo),
        fetch_hint=f"python -c \"import timm; timm.create_model('{model}', pretrained=True)\" "
        f"(or put model.safetensors in $DFZOO_WEIGHTS_DIR/{name}/)",
        licence=licence,
    )


def open_clip_weights(name: str, model: str, tag: str, summary: str, licence: str = "") -> WeightsSpec:
    """open_clip weights ``(model, tag)``, found in the HF cache or downloaded."""

    def repo() -> str:
        import open_clip

        return open_clip.get_pretrained_cfg(model, tag)["hf_hub"].rstrip("/")

    return WeightsSpec(
        name=name,
        summary=summary,
        library="open_clip",
        source=f"{model} / {tag}",
        files=("open_clip_pytorch_model.bin", "open_clip_model.safetensors", f"{model}.pt"),
        find_local=lambda: hf_cached_file(repo),
        download=lambda: hf_download(repo()),
        fetch_hint=f"python -c \"import open_clip; open_clip.create_model('{model}', pretrained='{tag}')\" "
        f"(or put open_clip_pytorch_model.bin in $DFZOO_WEIGHTS_DIR/{name}/)",
        licence=licence,
    )


def timm_backbone(
    name: str,
    arch: str,
    weights: ResolvedWeights | None,
    device: Any = None,
    state_dict: dict | None = None,
    **create_kwargs: Any,
) -> TorchBackbone:
    """A timm model with its classifier removed (``num_classes=0``: pooled features out)."""
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=0, **create_kwargs)
    # timm sets these attributes on every model; torch types unknown module attributes as Tensor | Module
    cfg = cast("dict[str, Any]", model.pretrained_cfg)
    num_features = cast(int, model.num_features)
    if state_dict is None and weights is not None:
        state_dict = load_state_dict(weights.path)
    if state_dict is not None:
        model.load_state_dict(
            {k: v for k, v in state_dict.items() if not k.startswith(cfg.get("classifier", "fc") + ".")},
            strict=True,
        )
    normalisation = Normalisation(
        size=cfg["input_size"][-1],
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bicubic"),
    )
    return TorchBackbone(
        name,
        model,
        normalisation,
        num_features,
        weights.identity if weights is not None else None,
        device,
        settings={"timm": arch, **create_kwargs},
    )


def open_clip_backbone(
    name: str,
    model_name: str,
    weights: ResolvedWeights | None,
    device: Any = None,
    quick_gelu: bool = False,
    **create_kwargs: Any,
) -> TorchBackbone:
    """The image tower of an open_clip model; features are the (unnormalised) image embeddings."""
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(
        model_name,
        pretrained=str(weights.path) if weights is not None else None,
        force_quick_gelu=quick_gelu,
        **create_kwargs,
    )
    return open_clip_tower(
        name,
        model.visual,
        weights.identity if weights is not None else None,
        device,
        settings={"open_clip": model_name, "quick_gelu": quick_gelu, **create_kwargs},
    )


def open_clip_tower(
    name: str, visual: Any, weights_identity: str | None, device: Any = None, settings: dict[str, Any] | None = None
) -> TorchBackbone:
    """An open_clip image tower (``model.visual``, or a ``VisionTransformer`` built directly) as a backbone:
    CLIP's input convention unless the tower states its own; features are the unnormalised image embeddings."""
    import open_clip

    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    normalisation = Normalisation(
        size=size,
        mean=tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
        std=tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
    )
    return TorchBackbone(name, visual, normalisation, visual.output_dim, weights_identity, device, settings=settings)


def load_state_dict(path: Path) -> dict:
    """A checkpoint as a state dict, safely: safetensors, or ``torch.load(weights_only=True)``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state
