"""AEROBLADE (Ricker, Lukovnikov & Fischer, CVPR 2024, arXiv:2401.17879): training-free detection of
latent-diffusion images by how well a latent-diffusion autoencoder reconstructs them.

An image a latent diffusion model generated was decoded by that model's autoencoder, so it lies (almost)
in the decoder's range and survives ``decode(encode(x))`` nearly unchanged; a real photo loses detail.
The score is ``-min_over_autoencoders distance(x, AE^k(x))``: higher = more likely generated. The distance
is the paper's LPIPS_2 (LPIPS restricted to VGG16's second block) unless that cannot be had; then a named
fallback is used and recorded in ``describe()`` and thus in every result row.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from typing import Any

import numpy as np

from dfzoo import DetectorSpec, Param, hookimpl
from dfzoo.cache import compute_cached
from dfzoo.data.sample import Sample
from dfzoo.detector import Detector, RunContext
from dfzoo.training import GPU_WHERE_AVAILABLE
from dfzoo.weights import ResolvedWeights, WeightsNotFound

from ._aeroblade_distances import DISTANCES, EFFNET, Distance, build_distance, required_weights
from ._reconstruction import (
    RandomModel,
    hub_diffusers_weights,
    model_folder,
    prepare_for_model,
    quantise,
)

AUTOENCODER_CLASSES = ("AutoencoderKL", "VQModel")
AUTOENCODER_SUBFOLDERS = ("vae", "movq")

DEFAULTS: dict[str, Any] = {
    "vaes": ["zoo_vae"],
    "distance": "lpips_vgg_2",
    "fallback": EFFNET,
    "spatial": "mean",
    "patch_size": 64,
    "repeats": 1,
    "latent": "sample",
    "batch_size": 4,
}
PAPER_VAES = ["sd1_vae", "sd2_vae", "kandinsky21_movq"]


@hookimpl
def dfzoo_weights():
    yield hub_diffusers_weights(
        "sd1_vae",
        "CompVis/stable-diffusion-v1-1",
        "Stable Diffusion 1.x autoencoder (KL-f8; the same weights in SD1.1-1.5)",
        subfolder="vae",
        licence="CreativeML OpenRAIL-M",
    )
    yield hub_diffusers_weights(
        "sd2_vae",
        "stabilityai/stable-diffusion-2-base",
        "Stable Diffusion 2.x autoencoder (KL-f8)",
        subfolder="vae",
        licence="CreativeML OpenRAIL++-M",
    )
    yield hub_diffusers_weights(
        "kandinsky21_movq",
        "kandinsky-community/kandinsky-2-1",
        "Kandinsky 2.1 MoVQ autoencoder (diffusers VQModel)",
        subfolder="movq",
        licence="Apache-2.0",
    )


@hookimpl
def dfzoo_detectors():
    yield DetectorSpec(
        name="aeroblade",
        factory=Aeroblade,
        trainable=False,
        paper="arXiv:2401.17879",
        params=DEFAULTS,
        weight_params=("vaes",),
        tags=("training-free", "reconstruction", "latent-diffusion"),
        resources=GPU_WHERE_AVAILABLE,
        smoke_params={"vaes": ["random:tiny_kl"], "distance": "l2", "batch_size": 8},
        param_schema={
            "vaes": Param(types=(list, tuple, str)),
            "distance": Param(choices=DISTANCES),
            "fallback": Param(choices=DISTANCES, optional=True),
            "spatial": Param(choices=("mean", "max")),
            "latent": Param(choices=("sample", "mode")),
        },
    )


# -- distances -------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """What a run will use, decided before any model is built (so ``describe()`` is cheap)."""

    vaes: list[tuple[str, ResolvedWeights | RandomModel]]
    distance: str
    distance_weights: list[ResolvedWeights]
    fallback_reason: str = ""
    vae_classes: list[str] = field(default_factory=list)


def _reduce(maps: list[Any], size: tuple[int, int], spatial: str, patch: int) -> Any:
    """Mean over space (LPIPS's spatial average), or the largest mean over non-overlapping patches."""
    import torch.nn.functional as F

    if spatial == "mean":
        return sum(m.mean(dim=(1, 2, 3)) for m in maps)
    full = reduce(operator.add, (F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps))
    kernel = (min(patch, size[0]), min(patch, size[1]))
    return F.avg_pool2d(full, kernel, stride=kernel).amax(dim=(1, 2, 3))


class _Autoencoder:
    """A diffusers AutoencoderKL or VQModel as ``x -> quantise(decode(encode(x)))``.

    KL latents are sampled (as the paper does) with noise seeded per image from ``(seed, repeat)``, so a
    score never depends on which other images share the batch; VQ latents are decoded without quantisation
    (as Kandinsky's pipeline decodes its generated latents).
    """

    def __init__(self, source: ResolvedWeights | RandomModel, device: Any, latent: str) -> None:
        from ._reconstruction import load_diffusers_model

        if isinstance(source, RandomModel):
            if source.class_name not in AUTOENCODER_CLASSES:
                raise ValueError(f"random:{source.arch} is a {source.class_name}, not an autoencoder")
            self.model = source.build()
        else:
            self.model, _ = load_diffusers_model(source.path, AUTOENCODER_CLASSES, AUTOENCODER_SUBFOLDERS)
        self.model.to(device)
        self.kind = type(self.model).__name__
        self.factor = 2 ** (len(self.model.config.block_out_channels) - 1)
        self.device = device
        self.latent = latent

    def __call__(self, x: Any, seed: int, repeat: int) -> Any:
        import torch

        dtype = next(self.model.parameters()).dtype
        x = x.to(dtype)
        if self.kind == "VQModel":
            out = self.model.decode(self.model.encode(x).latents, force_not_quantize=True).sample
        else:
            posterior = self.model.encode(x).latent_dist
            z = posterior.mean
            if self.latent == "sample":
                generator = torch.Generator().manual_seed(seed * 1009 + repeat)
                noise = torch.randn(tuple(z.shape[1:]), generator=generator).to(z.device, z.dtype)
                z = z + posterior.std * noise.unsqueeze(0)
            out = self.model.decode(z).sample
        return quantise(out.float())


# -- detector --------------------------------------------------------------------------------------------
class Aeroblade(Detector):
    """AEROBLADE: -LPIPS_2 distance to the best latent-diffusion autoencoder reconstruction (training-free).

    Training-free: ``score = -min_v distance(x, AE_v^k(x))`` over the given autoencoders ``vaes``.

    Parameters: ``vaes`` (weights names, folders or hub ids; the paper's set is ``sd1_vae, sd2_vae,
    kandinsky21_movq``; ``random:<arch>`` builds a random-initialised architecture for smoke tests);
    ``distance`` (``lpips_vgg_2`` = the paper's LPIPS_2; ``lpips_vgg_0`` full LPIPS; ``effnet_lite0_s2``;
    ``l2``); ``fallback`` (used, and recorded, when the distance's weights cannot be resolved; ``None`` to
    fail instead); ``spatial`` (``mean``, or ``max``: the worst ``patch_size`` x ``patch_size`` patch);
    ``repeats`` (k: distance between the image and its k-th iterated reconstruction AE^k); ``latent``
    (``sample`` as in the paper, or ``mode``); ``batch_size``.
    """

    name = "aeroblade"
    trainable = False

    def __init__(self, **params: Any) -> None:
        params = {**DEFAULTS, **params}
        vaes = params["vaes"]
        params["vaes"] = [v.strip() for v in vaes.split(",")] if isinstance(vaes, str) else list(vaes)
        if not params["vaes"]:
            raise ValueError("aeroblade needs at least one autoencoder in vaes")
        if params["spatial"] not in ("mean", "max"):
            raise ValueError(f"spatial must be 'mean' or 'max', got {params['spatial']!r}")
        if params["latent"] not in ("sample", "mode"):
            raise ValueError(f"latent must be 'sample' or 'mode', got {params['latent']!r}")
        if int(params["repeats"]) < 1 or int(params["patch_size"]) < 1:
            raise ValueError("repeats and patch_size must be at least 1")
        super().__init__(**params)
        self._plan_cache: _Plan | None = None
        self._built: tuple[Any, list[_Autoencoder], Distance] | None = None
        self.last_errors: dict[int, str] = {}

    def setup(self, context: RunContext) -> Aeroblade:
        if self._built is not None and context.device != self.context.device:
            self._built = None
        return super().setup(context)

    # -- what will be used ---------------------------------------------------------------------------
    def plan(self) -> _Plan:
        """Resolve every model (no loading): the autoencoders, and the distance or its recorded fallback."""
        if self._plan_cache is not None:
            return self._plan_cache
        from dfzoo.registry import current_registry

        from ._reconstruction import resolve_model

        registry = current_registry()
        vaes = [(ref, resolve_model(ref, registry)) for ref in self.params["vaes"]]
        requested, fallback = self.params["distance"], self.params["fallback"]
        reason = ""
        try:
            name, weights = requested, required_weights(requested, registry)
        except WeightsNotFound as error:
            if not fallback or fallback == requested:
                raise
            reason = str(error).splitlines()[0]
            name, weights = fallback, required_weights(fallback, registry)
        classes = []
        for _, source in vaes:
            if isinstance(source, RandomModel):
                classes.append(source.class_name)
                continue
            folder = model_folder(source.path, AUTOENCODER_SUBFOLDERS)
            classes.append(json.loads((folder / "config.json").read_text()).get("_class_name", "?"))
        self._plan_cache = _Plan(vaes, name, weights, reason, classes)
        return self._plan_cache

    def describe(self) -> dict[str, Any]:
        plan = self.plan()
        info: dict[str, Any] = {
            "vaes": [w.identity for _, w in plan.vaes],
            "vae_classes": plan.vae_classes,
            "distance": plan.distance,
            "distance_weights": [w.identity for w in plan.distance_weights],
            "spatial": self.params["spatial"],
            "repeats": int(self.params["repeats"]),
            "latent": self.params["latent"],
            "score": "-min over vaes of distance(x, AE^repeats(x))",
            "preprocess": self.context.preprocess.key
            if self.context.preprocess.size
            else "native size, centre-cropped to a multiple of the autoencoder's downsampling factor",
        }
        if self.params["spatial"] == "max":
            info["patch_size"] = int(self.params["patch_size"])
        if plan.distance != self.params["distance"]:
            info["distance_requested"] = self.params["distance"]
            info["distance_fallback_reason"] = plan.fallback_reason
        return info

    # -- computation ---------------------------------------------------------------------------------
    def _build(self) -> tuple[Any, list[_Autoencoder], Distance]:
        if self._built is None:
            from dfzoo.device import pick_device
            from dfzoo.registry import current_registry

            plan = self.plan()
            device = pick_device(self.context.device)
            autoencoders = [_Autoencoder(w, device, self.params["latent"]) for _, w in plan.vaes]
            distance = build_distance(plan.distance, plan.distance_weights, device, current_registry())
            self._built = (device, autoencoders, distance)
        return self._built

    def _cache_key(self) -> str:
        plan = self.plan()
        context = self.context
        parts = [
            "aeroblade",
            *(w.identity for _, w in plan.vaes),
            plan.distance,
            *(w.identity for w in plan.distance_weights),
            f"spatial={self.params['spatial']}",
            f"patch={self.params['patch_size']}" if self.params["spatial"] == "max" else "",
            f"repeats={self.params['repeats']}",
            f"latent={self.params['latent']}",
            context.preprocess.key if context.preprocess.size else "native",
        ]
        if self.params["latent"] == "sample":
            parts.append(f"seed={context.seed}")
        return "|".join(parts)

    def _distances_batch(self, array: np.ndarray) -> np.ndarray:
        import torch

        from dfzoo.device import autocast

        device, autoencoders, distance = self._build()
        repeats, seed = int(self.params["repeats"]), int(self.context.seed)
        with torch.inference_mode(), autocast(device):
            x = torch.from_numpy(array).to(device)
            original = distance.features(x)
            columns = []
            for autoencoder in autoencoders:
                reconstruction = x
                for k in range(repeats):
                    reconstruction = autoencoder(reconstruction, seed, k)
                maps = distance.maps(original, distance.features(reconstruction))
                columns.append(
                    _reduce(
                        [m.float() for m in maps],
                        (x.shape[-2], x.shape[-1]),
                        self.params["spatial"],
                        int(self.params["patch_size"]),
                    )
                )
        return torch.stack(columns, dim=1).float().cpu().numpy()

    def distances(self, samples: Sequence[Sample]) -> np.ndarray:
        """[N, len(vaes)] reconstruction distances (NaN rows for undecodable images)."""
        device, autoencoders, _ = self._build()
        factor = math.lcm(*(a.factor for a in autoencoders))
        context = self.context
        prepare = partial(prepare_for_model, policy=context.preprocess, factor=factor, size=None)
        computed = compute_cached(
            samples,
            key=self._cache_key(),
            dim=len(autoencoders),
            prepare=prepare,
            compute=self._distances_batch,
            batch_size=int(context.batch_size or self.params["batch_size"]),
            cache=context.cache,
            device=device,
            progress=context.progress,
            desc="aeroblade",
        )
        self.last_errors = computed.errors
        for position, reason in computed.errors.items():
            self.record_skip(samples[position], reason)
        return computed.vectors

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        distances = self.distances(samples)
        return -np.min(distances, axis=1) if len(distances) else np.empty((0,), dtype=np.float32)
