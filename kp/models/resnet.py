"""ResNet-18/34-style backbone: a strided 7×7 stem and max-pool (stride 4), then stages of basic residual blocks,
each stage after the first halving the resolution. ResNet-18: widths 64-128-256-512, blocks 2-2-2-2; ResNet-34:
blocks 3-4-6-3. With target=heatmap, KeypointNet puts SimpleBaseline's deconvolution head on top (Xiao et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from kp.models.blocks import ResidualBlock, conv_bn_relu


class ResNet(nn.Module):
    dense = False  # coarse features: direct coordinate regression, or heatmaps through a deconvolution head

    def __init__(self, in_channels: int, widths: list[int] = (16, 32, 64, 128), blocks: list[int] = (1, 1, 1, 1)):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"ResNet: widths {list(widths)} and blocks {list(blocks)} must have one entry per stage")
        self.stem = nn.Sequential(conv_bn_relu(in_channels, widths[0], 7, stride=2), nn.MaxPool2d(3, 2, 1))
        stages, previous = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            stages += [
                ResidualBlock(previous if j == 0 else width, width, stride=2 if i > 0 and j == 0 else 1)
                for j in range(count)
            ]
            previous = width
        self.stages = nn.Sequential(*stages)
        self.out_channels, self.out_stride = previous, 4 * 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stages(self.stem(x))
        return {"features": x, "bottleneck": x}
