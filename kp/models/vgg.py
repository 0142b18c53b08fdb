"""VGG-style plain CNN: stages of convolution + BatchNorm + ReLU, each stage ending in a 2×2 max-pool.

Two presets use it: `model=vgg` (VGG-16: depths 2-2-3-3-3, the facial seed's direct-regression net) and
`model=simple_cnn` (one convolution per stage with 7/5/3/3/3 kernels, the 68-landmark seed's net). The FCN reuses
its stages as its encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from kp.models.blocks import conv_bn_relu


class VGG(nn.Module):
    dense = False  # coarse features: direct coordinate regression, or heatmaps through a deconvolution head

    def __init__(
        self,
        in_channels: int,
        widths: list[int] = (16, 32, 64, 128),
        depths: list[int] = (2, 2, 3, 3),
        kernel_sizes: list[int] | None = None,  # one per stage; default 3×3 everywhere
    ):
        super().__init__()
        kernel_sizes = kernel_sizes or [3] * len(widths)
        if not len(widths) == len(depths) == len(kernel_sizes):
            raise ValueError(
                f"VGG: widths {list(widths)}, depths {list(depths)} and kernel_sizes "
                f"{list(kernel_sizes)} must have one entry per stage"
            )
        self.stages = nn.ModuleList()
        previous = in_channels
        for width, depth, kernel in zip(widths, depths, kernel_sizes):
            convs = [conv_bn_relu(previous if i == 0 else width, width, kernel) for i in range(depth)]
            self.stages.append(nn.Sequential(*convs, nn.MaxPool2d(2)))
            previous = width
        self.out_channels, self.out_stride = previous, 2 ** len(widths)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for stage in self.stages:
            x = stage(x)
        return {"features": x, "bottleneck": x}
