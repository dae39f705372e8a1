"""Small generator architectures for the zoo (32 px RGB, tanh range [-1, 1]).

The two GAN generators differ only in how they upsample, the field's classic source of artefacts:
transposed convolutions (checkerboard) versus nearest-neighbour upsampling followed by a convolution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation, N(0, 0.02) weights: PyTorch's default for transposed convolutions counts
    fan-in over output channels, which saturates a 3-channel tanh output from the first step."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


class LatentGenerator(nn.Module):
    """A GAN generator: z ~ N(0, I) of ``z_dim`` projected to ``4 * width`` channels at 4x4, then ``body``."""

    body: nn.Module

    def __init__(self, z_dim: int, width: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.width = width
        self.project = nn.Sequential(nn.Linear(z_dim, width * 4 * 16), nn.BatchNorm1d(width * 4 * 16), nn.ReLU())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, self.width * 4, 4, 4))


class TConvGenerator(LatentGenerator):
    """DCGAN-style: project z to 4x4, then three stride-2 transposed convolutions to 32x32."""

    def __init__(self, z_dim: int = 64, width: int = 32) -> None:
        super().__init__(z_dim, width)
        self.body = nn.Sequential(
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1),
            nn.BatchNorm2d(width * 2),
            nn.ReLU(),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, 2, 1),
            nn.Tanh(),
        )
        dcgan_init(self)


class UpsampleGenerator(LatentGenerator):
    """Project z to 4x4, then three (nearest upsample, 3x3 convolution) stages to 32x32."""

    def __init__(self, z_dim: int = 64, width: int = 32) -> None:
        super().__init__(z_dim, width)

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, 1, 1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]

        self.body = nn.Sequential(
            *stage(width * 4, width * 2),
            *stage(width * 2, width),
            *stage(width, width),
            nn.Conv2d(width, 3, 3, 1, 1),
            nn.Tanh(),
        )
        dcgan_init(self)


class Discriminator(nn.Module):
    """Spectrally normalised convolutional critic for 32x32 images (one logit per image)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(3, width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, width * 2, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width * 2, width * 4, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            spectral_norm(nn.Linear(width * 4 * 16, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


class PlainAutoencoder(nn.Module):
    """A deterministic convolutional autoencoder: 32x32x3 -> 8x8x``latent`` -> 32x32x3."""

    def __init__(self, width: int = 32, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(width, width * 2, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width * 2, width * 2, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width * 2, latent, 3, 1, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, width * 2, 3, 1, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width * 2, width * 2, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, 3, 3, 1, 1),
            nn.Tanh(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def make_vae(size: int = 32):
    """A small diffusers AutoencoderKL (latent 4 x size/2 x size/2), the class Stable Diffusion's VAE uses;
    without the mid-block attention, which costs most of the CPU time at this size."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**two_level_autoencoder((32, 64), 16, size), mid_block_add_attention=False)


def two_level_autoencoder(widths: tuple[int, int], groups: int, size: int) -> dict[str, Any]:
    """The keyword arguments of a two-level diffusers AutoencoderKL (or VQModel) on RGB, latent 4 x size/2 x
    size/2: the shape of Stable Diffusion's VAE, scaled down (the zoo's VAE, and the tests' tiny ones)."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2,
        "block_out_channels": widths,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": groups,
        "sample_size": size,
    }


def make_unet(size: int = 32):
    """A small diffusers UNet2DModel for noise prediction at ``size`` px."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
    )
