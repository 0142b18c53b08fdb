"""Stacked hourglass (Newell et al. 2016), with residual blocks at every resolution.

A stem brings the image to `stem_stride` (4 in the paper; 1 in the hourglass seed, which keeps the input resolution),
then `n_stacks` hourglasses run one after the other. Each stack's output features get their own heatmap head in
KeypointNet, and the earlier stacks' heatmaps come back as outputs["intermediate"] so that the loss supervises every
stack. A stack's features are added (through a 1×1 convolution) to the next stack's input; unlike the paper, the
heatmaps are not fed back, which keeps the backbone independent of the number of keypoints.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kp.models.blocks import ResidualBlock, conv_bn_relu

STEM_STRIDES = (1, 2, 4)


class Hourglass(nn.Module):
    """One hourglass: `depth` times (keep a residual branch, max-pool, residual block), a residual block at the
    bottom, then back up: residual block, nearest upsampling, add the branch kept at that resolution."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.branches = nn.ModuleList(ResidualBlock(width, width) for _ in range(depth))
        self.downs = nn.ModuleList(ResidualBlock(width, width) for _ in range(depth))
        self.bottom = ResidualBlock(width, width)
        self.ups = nn.ModuleList(ResidualBlock(width, width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        branches = []
        for branch, down in zip(self.branches, self.downs):
            branches.append(branch(x))
            x = down(F.max_pool2d(x, 2))
        x = bottom = self.bottom(x)
        for up in self.ups:
            branch = branches.pop()
            x = F.interpolate(up(x), size=branch.shape[-2:], mode="nearest") + branch
        return x, bottom


class StackedHourglass(nn.Module):
    dense = True  # per-pixel features at the stem's stride

    def __init__(self, in_channels: int, width: int = 32, depth: int = 3, n_stacks: int = 2, stem_stride: int = 4):
        super().__init__()
        if stem_stride not in STEM_STRIDES:
            raise ValueError(f"StackedHourglass: stem_stride must be one of {STEM_STRIDES}, got {stem_stride}")
        if n_stacks < 1:
            raise ValueError(f"StackedHourglass: n_stacks must be at least 1, got {n_stacks}")
        stem = [conv_bn_relu(in_channels, width, 7, stride=1 if stem_stride == 1 else 2), ResidualBlock(width, width)]
        if stem_stride == 4:
            stem += [nn.MaxPool2d(2), ResidualBlock(width, width)]
        self.stem = nn.Sequential(*stem)
        self.hourglasses = nn.ModuleList(Hourglass(width, depth) for _ in range(n_stacks))
        self.stack_outputs = nn.ModuleList(
            nn.Sequential(ResidualBlock(width, width), conv_bn_relu(width, width, 1)) for _ in range(n_stacks)
        )
        self.merges = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(n_stacks - 1))
        self.out_channels, self.out_stride = width, stem_stride

    def forward(self, images: torch.Tensor) -> dict:
        x = self.stem(images)
        stacks = []
        for i, (hourglass, stack_output) in enumerate(zip(self.hourglasses, self.stack_outputs)):
            features, bottleneck = hourglass(x)
            stacks.append(stack_output(features))
            if i < len(self.merges):
                x = x + self.merges[i](stacks[-1])
        return {"features": stacks[-1], "bottleneck": bottleneck, "intermediate": stacks[:-1]}
