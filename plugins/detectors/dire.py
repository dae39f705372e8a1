"""DIRE (Wang et al., ICCV 2023, arXiv:2303.09295): the DIffusion Reconstruction Error, classified by a CNN.

An image is inverted to noise with deterministic DDIM through a pretrained diffusion UNet, then regenerated
from that noise with the same DDIM schedule. Images the diffusion model could have generated come back
closely; real photos do not. ``DIRE = |x - DDIM(DDIM^-1(x))|`` on the 8-bit grid, and a timm classifier
(ResNet-50, ImageNet-initialised in the paper) learns real vs fake from DIRE maps.

Encoding fairness: the published DIRE data stored real DIRE maps as JPEG and fake ones as PNG, and
classifiers learned the file format. Here every DIRE map, whatever its label, is kept and cached through
one lossless path (uint8 values, raw bytes in the shared feature cache, keyed by image content only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from dfzoo import hookimpl
from dfzoo.cache import compute_cached
from dfzoo.data.decode import ImageDecodeError
from dfzoo.data.sample import Sample
from dfzoo.training import Augment, SingleModelDetector, classifier_params, trained_detector_spec

from ._reconstruction import prepare_for_model

log = logging.getLogger(__name__)

DEFAULTS = {"unet": "zoo_unet", "steps": 20, "dire_batch_size": 16, **classifier_params("resnet50")}
DIRE_ENCODING = "uint8 |x - DDIM(DDIM^-1(x))| on the 8-bit grid, cached losslessly for every image whatever its label"


@hookimpl
def dfzoo_detectors():
    yield trained_detector_spec(
        "dire",
        Dire,
        paper="arXiv:2303.09295",
        params=DEFAULTS,
        weight_params=("unet", "arch", "weights"),
        tags=("reconstruction", "diffusion"),
        smoke={"unet": "random:tiny_unet", "steps": 2, "arch": "test_resnet", "pretrained": False},
    )


# -- DDIM inversion and reconstruction -------------------------------------------------------------------
class DdimReconstructor:
    """A diffusers UNet2DModel with its DDIM schedule: ``invert`` (image -> noise, deterministic DDIM run
    backwards), ``generate`` (noise -> image), and ``dire`` (the 8-bit reconstruction error).

    Inversion steps with :class:`diffusers.DDIMInverseScheduler` built from the very same configuration, so
    inversion and generation visit the same timesteps in opposite order (eta = 0 throughout).
    """

    def __init__(self, weights: Any, device: Any) -> None:
        from diffusers import DDIMInverseScheduler

        from ._reconstruction import RandomModel, _quiet, load_ddim_scheduler, model_folder

        self.weights = weights
        self.device = device
        if isinstance(weights, RandomModel):
            self.folder, config = None, weights.config
        else:
            self.folder = model_folder(weights.path, ("unet",))
            config = json.loads((self.folder / "config.json").read_text())
        if config.get("_class_name") != "UNet2DModel":
            raise ValueError(f"{self.folder} holds a {config.get('_class_name')}; DIRE needs a diffusers UNet2DModel")
        if config.get("num_class_embeds") or config.get("class_embed_type"):
            raise ValueError(f"{self.folder}: class-conditional UNets are not supported (DIRE inverts unconditionally)")
        self.scheduler, self.scheduler_info = load_ddim_scheduler(self.folder)
        self.inverse = _quiet(lambda: DDIMInverseScheduler.from_config(self.scheduler.config))
        self.factor = 2 ** (len(config.get("block_out_channels", (0,))) - 1)
        size = config.get("sample_size") or 256
        self.sample_size = int(size if isinstance(size, int) else size[0])
        self.channels = int(config.get("in_channels", 3))
        self._unet: Any = None

    @property
    def unet(self) -> Any:
        """The UNet, loaded on first use (identities and sizes come from its config alone)."""
        if self._unet is None:
            from ._reconstruction import load_diffusers_model

            if self.folder is None:
                self._unet = self.weights.build()
            else:
                self._unet, _ = load_diffusers_model(self.folder, ("UNet2DModel",))
            self._unet.to(self.device)
        return self._unet

    def _eps(self, x: Any, t: Any) -> Any:
        out = self.unet(x, t).sample
        return out[:, : self.channels] if out.shape[1] == 2 * self.channels else out  # learned-variance UNets

    def invert(self, x: Any, steps: int) -> Any:
        self.inverse.set_timesteps(steps, device=x.device)
        for t in self.inverse.timesteps:
            x = self.inverse.step(self._eps(x, t), t, x).prev_sample
        return x

    def generate(self, noise: Any, steps: int) -> Any:
        self.scheduler.set_timesteps(steps, device=noise.device)
        x = noise
        for t in self.scheduler.timesteps:
            x = self.scheduler.step(self._eps(x, t), t, x, eta=0.0).prev_sample
        return x

    def dire(self, batch: np.ndarray, steps: int) -> np.ndarray:
        """[B, 3, S, S] images in [-1, 1] -> [B, 3*S*S] integer DIRE values in [0, 255] (as float32)."""
        import torch

        from dfzoo.device import autocast

        with torch.inference_mode(), autocast(self.device):
            x = torch.from_numpy(batch).to(self.device)
            reconstruction = self.generate(self.invert(x, steps), steps).float()
        to_u8 = lambda t: ((t.clamp(-1, 1) + 1) * 127.5).round()
        return (to_u8(x.float()) - to_u8(reconstruction)).abs().flatten(1).cpu().numpy()


@dataclass(frozen=True)
class DireMapPipeline:
    """A :class:`dfzoo.training.SamplePipeline` over precomputed DIRE maps: ``load(sample)`` returns
    the sample's map scaled to [0, 1] and normalised as the classifier expects (flip augmentation when an
    ``rng`` is given). A sample whose DIRE map could not be computed raises :class:`ImageDecodeError`."""

    maps: Mapping[Sample, np.ndarray]  # uint8 [3, S, S], by sample identity
    errors: Mapping[Sample, str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: Augment = Augment()

    def load(self, sample: Sample, rng: np.random.Generator | None = None) -> np.ndarray:
        dire = self.maps.get(sample)
        if dire is None:
            raise ImageDecodeError(sample.display_name, self.errors.get(sample, "no DIRE map"))
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        array = (dire.astype(np.float32) / 255.0 - mean) / std
        if rng is not None:
            array = self.augment.geometry(array, rng)
        return np.ascontiguousarray(array, dtype=np.float32)


# -- detector --------------------------------------------------------------------------------------------
class Dire(SingleModelDetector):
    """DIRE: a CNN on DDIM inversion-reconstruction error maps of a diffusion UNet.

    DIRE maps from ``unet`` (weights name, folder or hub id, e.g. ``google/ddpm-cifar10-32``;
    ``random:<arch>`` for a random-initialised architecture in smoke tests) with ``steps`` DDIM steps each way
    (the paper uses 20), classified by a timm ``arch`` (ResNet-50 in the paper;
    ``pretrained=True`` needs its ImageNet weights to resolve, else pass ``pretrained=False``; ``describe()``
    then says random-init). Score = sigmoid probability of fake.
    """

    name = "dire"

    def __init__(self, **params: Any) -> None:
        params = {**DEFAULTS, **params}
        if int(params["steps"]) < 1:
            raise ValueError("steps must be at least 1")
        super().__init__(**params)
        self.model: Any = None
        self.trained_with: dict[str, Any] = {}
        self._engine: DdimReconstructor | None = None
        self._engine_device: Any = None
        self._resolved: Any = None
        self.last_errors: dict[int, str] = {}

    # -- the diffusion model -------------------------------------------------------------------------
    def unet_weights(self) -> Any:
        if self._resolved is None:
            from ._reconstruction import resolve_model

            self._resolved = resolve_model(str(self.params["unet"]))
        return self._resolved

    def engine(self) -> DdimReconstructor:
        device = self.device
        if self._engine is None or self._engine_device != device:
            self._engine = DdimReconstructor(self.unet_weights(), device)
            self._engine_device = device
        return self._engine

    def map_size(self) -> int:
        """DIRE maps (and classifier inputs) are at the UNet's resolution unless a size is asked for; a fitted
        detector keeps the size it was trained at."""
        return int(
            self.image_size
            or self.params.get("image_size")
            or self.context.preprocess.size
            or self.engine().sample_size
        )

    def _cache_key(self) -> str:
        """Everything but the image that changes a DIRE map (the sample view's perturbation is in its id)."""
        engine, context = self.engine(), self.context
        parts = [
            "dire",
            engine.weights.identity,
            engine.scheduler_info.identity,
            f"steps={int(self.params['steps'])}",
            f"size={self.map_size()}",
            context.preprocess.key,
        ]
        return "|".join(parts)

    def dire_maps(self, samples: Sequence[Sample]) -> tuple[np.ndarray, dict[int, str]]:
        """uint8 DIRE maps [N, 3, S, S] (zeros where an image could not be used, listed in the errors).

        Only image content reaches this computation and its cache: a sample's label, generator or file
        format plays no part in how its map is computed or stored.
        """
        engine, context = self.engine(), self.context
        size = self.map_size()
        prepare = partial(prepare_for_model, policy=context.preprocess, factor=engine.factor, size=size)
        computed = compute_cached(
            samples,
            key=self._cache_key(),
            dim=3 * size * size,
            dtype=np.uint8,
            prepare=prepare,
            compute=partial(engine.dire, steps=int(self.params["steps"])),
            batch_size=int(self.params["dire_batch_size"]),
            cache=context.cache,
            device=engine.device,
            progress=context.progress,
            desc="dire maps",
        )
        return computed.vectors.reshape(len(samples), 3, size, size), computed.errors

    # -- classifier ----------------------------------------------------------------------------------
    def _build(self, pretrained: bool) -> Any:
        return self.create_timm_classifier(1, pretrained)

    def _pipeline(
        self, samples: Sequence[Sample], maps: np.ndarray, errors: dict[int, str], augment: Augment = Augment()
    ) -> DireMapPipeline:
        from dfzoo.training import timm_normalisation

        norm = timm_normalisation(self.model, self.map_size())
        return DireMapPipeline(
            {s: maps[i] for i, s in enumerate(samples) if i not in errors},
            {samples[i]: reason for i, reason in errors.items()},
            norm.mean,
            norm.std,
            augment,
        )

    def _identity(self) -> dict[str, Any]:
        engine = self.engine()
        return {
            "unet": engine.weights.identity,
            "scheduler": engine.scheduler_info.identity,
            "steps": int(self.params["steps"]),
            "image_size": self.map_size(),
        }

    def fit(self, train: Sequence[Sample]) -> Dire:
        from dfzoo.training import augment_preset, bce_loss, binary_labels

        labels = binary_labels(train, self.name)
        self.model = self._build(bool(self.params["pretrained"]))  # fails fast when weights are missing
        self.image_size = None
        maps, errors = self.dire_maps(train)
        self.image_size = self.map_size()
        augment = augment_preset(self.params["augment"])
        self.train_stage(
            "classifier",
            self.model,
            train,
            labels,
            self._pipeline(train, maps, errors, augment),
            self._pipeline(train, maps, errors),
            bce_loss,
        )
        self.model.eval()
        self.trained_with = self._identity()
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        self._require_fitted()
        current = self._identity()
        if self.trained_with and current != self.trained_with:
            log.warning("dire: scoring with %s but the classifier was trained on %s", current, self.trained_with)
        maps, errors = self.dire_maps(samples)
        self.last_errors = errors
        return self.fake_probability(self.model, samples, self._pipeline(samples, maps, errors))

    def describe(self) -> dict[str, Any]:
        info = {**self._identity(), "dire_encoding": DIRE_ENCODING, **self.describe_training()}
        if self.trained_with:
            info["trained_with"] = self.trained_with
        return info

    # -- persistence ---------------------------------------------------------------------------------
    model_file = "classifier.safetensors"
    state_file = "dire-state.json"

    def _extra_state(self) -> dict[str, Any]:
        return {"trained_with": self.trained_with}

    def _restore_extra_state(self, state: Mapping[str, Any]) -> None:
        self.trained_with = state["trained_with"]
