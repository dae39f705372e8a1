"""NPR's network (torch): the neighbouring-pixel-relationship residual as a layer, then a shallow ResNet.

Imported only inside the ``npr`` detector's methods, so listing plugins never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.models.resnet import Bottleneck
from torch import nn

FACTOR = 2  # NPR's up-sampling factor: generators up-sample by 2 at each decoder stage


def npr_residual(x: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """``x - up(down(x))``: nearest-neighbour down-sampling by ``factor`` keeps the top-left pixel of each
    ``factor x factor`` block and nearest up-sampling copies it over the block, so the residual is each pixel
    minus the anchor of its block. Zero on an image that was itself nearest-up-sampled by ``factor`` (on the
    same grid); odd sizes are handled (the last partial block uses its own anchor)."""
    height, width = x.shape[-2:]
    anchor = x[..., ::factor, ::factor].repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    return x - anchor[..., :height, :width]


class NPRResidual(nn.Module):
    """:func:`npr_residual` as a parameter-free layer (the first layer of :class:`NPRNet`)."""

    def __init__(self, factor: int = FACTOR) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return npr_residual(x, self.factor)


class NPRNet(nn.Module):
    """NPR residual, then a ResNet with only its first ``len(layers)`` stages of bottleneck blocks (the paper:
    ResNet-50's first two, ``layers=(3, 4)``, width 64), global average pooling and one logit.

    The stem is one 3x3 stride-2 convolution (the paper's; ResNet-50's 7x7 would blur the 2x2 traces), batch
    norm, ReLU and a 3x3 stride-2 max pool. ``width`` scales every stage (64 = the paper's).
    """

    def __init__(self, layers: Sequence[int] = (3, 4), width: int = 64) -> None:
        super().__init__()
        if not layers or any(int(n) < 1 for n in layers) or width < 1:
            raise ValueError(f"NPRNet needs at least one stage of >= 1 block and width >= 1; got {layers}, {width}")
        self.residual = NPRResidual()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages: list[nn.Module] = []
        inplanes = width
        for index, blocks in enumerate(layers):
            planes, stride = width * 2**index, 1 if index == 0 else 2
            stage = []
            for block in range(int(blocks)):
                downsample = None
                if block == 0 and (stride != 1 or inplanes != planes * Bottleneck.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes * Bottleneck.expansion),
                    )
                stage.append(Bottleneck(inplanes, planes, stride=stride if block == 0 else 1, downsample=downsample))
                inplanes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, Bottleneck):
                module.zero_init_last()  # each residual block starts as the identity: trains from scratch stably

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(self.residual(x)))))
        return self.fc(torch.flatten(self.pool(self.stages(x)), 1))
