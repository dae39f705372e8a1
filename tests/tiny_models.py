"""Tiny models for tests: small ONNX exports (float and dynamically quantised), a token encoder, partial
VGG16 weights, and tiny diffusers autoencoders / UNets, all built offline with random or briefly trained weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.synthetic import smooth_image


def tiny_unet(folder: Path, train_steps: int = 20, seed: int = 0, size: int = 16) -> Path:
    """A 2-level diffusers UNet2DModel trained briefly (epsilon loss) on smooth images, saved with its DDIM
    scheduler config beside it (``scheduler_config.json``), as a hub repo like google/ddpm-cifar10-32 is."""
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        norm_num_groups=4,
    )
    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    rng = np.random.default_rng(seed)
    data = torch.from_numpy(np.stack([smooth_image(rng, size) for _ in range(128)])).permute(0, 3, 1, 2).float()
    data = data / 127.5 - 1
    optimiser = torch.optim.Adam(unet.parameters(), lr=2e-3)
    alphas = scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(seed)
    for _ in range(train_steps):
        x0 = data[torch.randint(0, len(data), (16,), generator=generator)]
        t = torch.randint(0, 1000, (16,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        loss = (unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t).sample - noise).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    unet.eval().save_pretrained(folder)
    scheduler.save_pretrained(folder)  # writes scheduler_config.json
    return folder


def tiny_autoencoder(folder: Path, seed: int = 0, kind: str = "kl") -> Path:
    """A random-init 2-level diffusers AutoencoderKL (or VQModel) saved with ``save_pretrained``."""
    import torch
    from diffusers import AutoencoderKL, VQModel

    from dfzoo.plugins.datasets._genzoo.models import two_level_autoencoder

    torch.manual_seed(seed)
    common = two_level_autoencoder((8, 16), 4, 32)
    model = AutoencoderKL(**common) if kind == "kl" else VQModel(**common, num_vq_embeddings=16, vq_embed_dim=4)
    model.save_pretrained(folder)
    return folder


def partial_vgg16(path: Path, seed: int = 0) -> dict:
    """The first two VGG16 blocks (all LPIPS_2 needs) in torchvision's key names, randomly initialised:
    enough to check our LPIPS_2 against the lpips package without a 528 MB file."""
    import torch
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    features = make_layers(cfgs["D"])[:9]
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def token_encoder():
    """A tiny ViT-like encoder: a patchifying Conv, then a two-layer MLP on tokens (MatMul on 3-D input)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patches = nn.Conv2d(3, 8, 4, stride=4)
            self.fc1, self.fc2 = nn.Linear(8, 24), nn.Linear(24, 12)

        def forward(self, x):
            tokens = self.patches(x).flatten(2).transpose(1, 2)
            return self.fc2(nn.functional.gelu(self.fc1(tokens))).mean(1)

    torch.manual_seed(0)
    return Encoder().eval()


def quantise(path, weight_type: str, per_channel: bool = False, **extra_options):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(f"{path.stem}.{weight_type}{'.pc' if per_channel else ''}.onnx")
    quantize_dynamic(
        str(path), str(out), weight_type=QuantType[weight_type], per_channel=per_channel, extra_options=extra_options
    )
    return out


def export(model, path, size=32, dynamic=True, metadata=None, any_size=False):
    """Export to ONNX: a dynamic batch axis (or a fixed batch of 1), and optionally any image size."""
    import onnx
    import torch

    pixel_axes = {0: "batch", 2: "height", 3: "width"} if any_size else {0: "batch"}
    axes = {"pixels": pixel_axes, "embedding": {0: "batch"}} if dynamic else None
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, size, size),),
        str(path),
        input_names=["pixels"],
        output_names=["embedding"],
        dynamic_axes=axes,
        dynamo=False,
    )
    if metadata:
        proto = onnx.load(str(path))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
    return path
