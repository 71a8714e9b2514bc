"""CIFAR-style ResNets (basic blocks, 3x3 stem, no max-pool) as used by MLPerf Tiny and ODiMO."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from networks.blocks import ConvBn

# (output channels, blocks, first-block stride) per stage
Stages = Sequence[tuple[int, int, int]]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1 conv-BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBn(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBn(out_channels, out_channels, 3, relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvBn(in_channels, out_channels, 1, stride, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    """3x3 stride-1 stem, basic-block stages, global average pool, linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, stem_channels: int,
                 stages: Stages) -> None:
        super().__init__()
        self.stem = ConvBn(in_channels, stem_channels, 3)
        blocks: list[nn.Module] = []
        channels = stem_channels
        for out_channels, n_blocks, stride in stages:
            for index in range(n_blocks):
                blocks.append(BasicBlock(channels, out_channels, stride if index == 0 else 1))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))  # (N, C, 1, 1)
        return self.fc(torch.flatten(x, 1))  # (N, num_classes)
