"""Training and sampling for the zoo's generators. Every loop records its loss curve for the manifest.

Images are tensors in [-1, 1] of torch's default dtype (set by the build's :mod:`.numerics`).
Each function is deterministic for a given ``torch.manual_seed``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .models import LatentGenerator


@dataclass
class LossCurve:
    """Mean loss over consecutive chunks of training steps (``points`` chunks in all)."""

    name: str
    values: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    selected: tuple[int, float] | None = None  # (step, value) of the checkpoint kept, when not the last

    @property
    def fell(self) -> bool:
        """The kept model's value is below the first one (the last value, or the selected checkpoint's)."""
        kept = self.selected[1] if self.selected is not None else (self.values[-1] if self.values else None)
        return len(self.values) >= 2 and kept is not None and kept < self.values[0]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "values": [round(v, 6) for v in self.values],
            "fell": self.fell,
            "selected": list(self.selected) if self.selected is not None else None,
            **{k: [round(v, 6) for v in vs] for k, vs in self.extra.items()},
        }


def chunked(losses: list[float], points: int = 10) -> list[float]:
    chunks = np.array_split(np.asarray(losses, dtype=np.float64), min(points, len(losses)))
    return [float(c.mean()) for c in chunks]


@dataclass
class Training:
    """What every training loop takes: the patches to learn from, ``steps`` minibatches of ``batch_size``, the
    generator of every random draw (minibatches, noise, latents), and ``progress``, called after each step."""

    data: torch.Tensor
    steps: int
    batch_size: int
    rng: torch.Generator
    progress: Callable[[], object]

    def batches(self) -> Iterator[torch.Tensor]:
        """``steps`` random minibatches drawn with replacement across epochs, reproducibly; ``progress`` is
        called when the loop comes back for the next one (so after each step, the last included)."""
        for _ in range(self.steps):
            yield self.data[torch.randint(0, len(self.data), (self.batch_size,), generator=self.rng)]
            self.progress()


def optimise(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One gradient step on ``loss``; its value."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.item()


def to_tensor(patches: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> [N, 3, H, W] in [-1, 1], in torch's default dtype."""
    return torch.from_numpy(patches).permute(0, 3, 1, 2).to(torch.get_default_dtype()).div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_statistics(images: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and std, and mean absolute horizontal/vertical gradients: a cheap quality proxy."""
    dx = (images[..., 1:] - images[..., :-1]).abs().mean(dim=(0, 2, 3))
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(dim=(0, 2, 3))
    return torch.cat([images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3)), dx, dy])


def train_gan(generator: LatentGenerator, discriminator: nn.Module, training: Training) -> LossCurve:
    """Non-saturating GAN training, two-time-scale Adam (generator 4e-4, discriminator 1e-4, betas 0.5/0.999).

    GAN losses need not fall (the players compete), so the curve that must fall is the distance between
    generated and real image statistics (:func:`image_statistics`), measured every chunk; the generator and
    discriminator losses are recorded beside it.
    """
    opt_g = torch.optim.Adam(generator.parameters(), lr=4e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    target = image_statistics(training.data)
    probe_z = torch.randn(256, generator.z_dim, generator=training.rng)

    def statistic_distance() -> float:
        generator.eval()
        with torch.no_grad():
            distance = (image_statistics(generator(probe_z)) - target).abs().mean().item()
        generator.train()
        return distance

    distances, g_losses, d_losses = [statistic_distance()], [], []
    best_distance, best_state, best_step = float("inf"), None, 0
    every = max(1, training.steps // 10)
    for step, real in enumerate(training.batches(), start=1):
        fake = generator(torch.randn(training.batch_size, generator.z_dim, generator=training.rng))
        d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        d_losses.append(optimise(opt_d, d_loss))
        g_losses.append(optimise(opt_g, F.softplus(-discriminator(fake)).mean()))
        if step % every == 0:
            distances.append(statistic_distance())
            if distances[-1] < best_distance:
                best_distance, best_step = distances[-1], step
                best_state = copy.deepcopy(generator.state_dict())
    if best_state is not None:  # keep the checkpoint closest to the real statistics (GAN training oscillates)
        generator.load_state_dict(best_state)
    generator.eval()
    curve = LossCurve(
        "image-statistics distance to real patches (generator kept at its best checkpoint)",
        distances,
        {"generator_loss": chunked(g_losses), "discriminator_loss": chunked(d_losses)},
    )
    curve.selected = (best_step, best_distance)
    return curve


def sample_gan(generator: LatentGenerator, count: int, rng: torch.Generator) -> torch.Tensor:
    with torch.no_grad():
        return generator(torch.randn(count, generator.z_dim, generator=rng))


def train_autoencoder(
    model: Any,  # a diffusers AutoencoderKL (kl_weight > 0) or a PlainAutoencoder: two APIs
    training: Training,
    kl_weight: float = 0.0,
) -> LossCurve:
    """Reconstruction training (L1 + MSE); ``kl_weight`` > 0 trains a diffusers AutoencoderKL as a VAE."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for batch in training.batches():
        if kl_weight:
            posterior = model.encode(batch).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=training.rng)
            reconstruction = model.decode(z).sample
            kl = posterior.kl().mean() / z[0].numel()
        else:
            reconstruction, kl = model(batch), torch.zeros(())
        loss = F.l1_loss(reconstruction, batch) + F.mse_loss(reconstruction, batch) + kl_weight * kl
        losses.append(optimise(optimiser, loss))
    model.eval()
    return LossCurve("reconstruction loss (L1 + MSE" + (" + KL)" if kl_weight else ")"), chunked(losses))


def encode_latents(model: Any, data: torch.Tensor, variational: bool) -> torch.Tensor:
    with torch.no_grad():
        return model.encode(data).latent_dist.mean if variational else model.encode(data)


def sample_latent_gaussian(latents: torch.Tensor, count: int, rng: torch.Generator) -> torch.Tensor:
    """Draw latents from a full-covariance Gaussian fitted to training latents (a learned prior)."""
    flat = latents.flatten(1).double()
    mean = flat.mean(0)
    covariance = torch.cov(flat.T) + 1e-4 * torch.eye(flat.shape[1], dtype=torch.float64)
    values, vectors = torch.linalg.eigh(covariance)
    root = vectors * values.clamp(min=0).sqrt()
    noise = torch.randn(count, flat.shape[1], generator=rng, dtype=torch.float64)
    return (mean + noise @ root.T).to(latents.dtype).view(count, *latents.shape[1:])


def decode(model: Any, latents: torch.Tensor, variational: bool) -> torch.Tensor:
    with torch.no_grad():
        return model.decode(latents).sample if variational else model.decode(latents)


def train_diffusion(unet: Any, scheduler: Any, training: Training) -> LossCurve:  # diffusers (untyped configs)
    """Noise-prediction (epsilon) training with the DDPM forward process; AdamW 1e-3 (small model, few steps)."""
    optimiser = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    horizon = scheduler.config.num_train_timesteps
    losses = []
    unet.train()
    for batch in training.batches():
        noise = torch.randn(batch.shape, generator=training.rng)
        timesteps = torch.randint(0, horizon, (len(batch),), generator=training.rng)
        noisy = scheduler.add_noise(batch, noise, timesteps)
        losses.append(optimise(optimiser, F.mse_loss(unet(noisy, timesteps).sample, noise)))
    unet.eval()
    return LossCurve("noise-prediction MSE", chunked(losses))


def sample_diffusion(
    unet: Any,
    scheduler: Any,
    count: int,
    steps: int,
    rng: torch.Generator,
    batch_size: int = 128,
    eta: float | None = None,
) -> torch.Tensor:
    """Ancestral sampling with ``scheduler`` (DDPM or DDIM) over ``steps`` inference steps."""
    size = unet.config.sample_size
    out = []
    scheduler.set_timesteps(steps)
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        x = torch.randn(n, 3, size, size, generator=rng)
        with torch.no_grad():
            for t in scheduler.timesteps:
                eps = unet(x, t).sample
                kwargs = {"eta": eta} if eta is not None else {}
                x = scheduler.step(eps, t, x, generator=rng, **kwargs).prev_sample
        out.append(x)
    return torch.cat(out)
