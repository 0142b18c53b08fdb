"""A small MobileNetV2-style backbone (Sandler et al. 2018) for fast CPU runs: a strided 3×3 stem, then stages of
inverted residual blocks (1×1 expansion, 3×3 depthwise convolution, linear 1×1 projection)."""

from __future__ import annotations

import torch
from torch import nn

from kp.models.blocks import conv_bn_relu


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        expand = [conv_bn_relu(in_channels, hidden, 1)] if expansion != 1 else []
        self.layers = nn.Sequential(
            *expand,
            conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # linear bottleneck: no ReLU on the narrow output
            nn.BatchNorm2d(out_channels),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.residual else self.layers(x)


class MobileNet(nn.Module):
    dense = False  # coarse features: direct coordinate regression, or heatmaps through a deconvolution head

    def __init__(
        self,
        in_channels: int,
        stem_width: int = 16,
        widths: list[int] = (16, 24, 32, 64),
        blocks: list[int] = (1, 2, 2, 2),
        strides: list[int] = (1, 2, 2, 2),  # of each stage's first block
        expansion: int = 4,
    ):
        super().__init__()
        if not len(widths) == len(blocks) == len(strides):
            raise ValueError(
                f"MobileNet: widths {list(widths)}, blocks {list(blocks)} and strides {list(strides)} "
                "must have one entry per stage"
            )
        layers, previous, self.out_stride = [conv_bn_relu(in_channels, stem_width, 3, stride=2)], stem_width, 2
        for width, count, stride in zip(widths, blocks, strides):
            for j in range(count):
                layers.append(InvertedResidual(previous, width, stride if j == 0 else 1, expansion))
                previous = width
            self.out_stride *= stride
        self.layers = nn.Sequential(*layers)
        self.out_channels = previous

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.layers(x)
        return {"features": x, "bottleneck": x}
