"""MobileNetV1 (Howard et al. 2017) with a width multiplier, as in MLPerf Tiny's VWW model."""
from __future__ import annotations

import math

import torch
from torch import nn

from networks.blocks import ConvBn

# (pointwise output channels at width 1.0, depthwise stride) for the 13 separable blocks
SEPARABLE_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
STEM_CHANNELS = 32


def scaled_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times width, rounded up to a multiple of ``divisor`` (ODiMO make_divisible)."""
    return int(math.ceil(channels * width / divisor) * divisor)


class SeparableBlock(nn.Module):
    """3x3 depthwise conv then 1x1 pointwise conv, each with BatchNorm and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = ConvBn(cin, cin, 3, stride, groups=cin)
        self.pointwise = ConvBn(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """3x3 stride-2 stem, 13 depthwise-separable blocks, global pool, linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 0.25) -> None:
        super().__init__()
        channels = scaled_channels(STEM_CHANNELS, width)
        self.stem = ConvBn(in_channels, channels, 3, 2)
        blocks: list[nn.Module] = []
        for out_channels, stride in SEPARABLE_BLOCKS:
            out_channels = scaled_channels(out_channels, width)
            blocks.append(SeparableBlock(channels, out_channels, stride))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))  # (N, C, 1, 1)
        return self.fc(torch.flatten(x, 1))  # (N, num_classes)
