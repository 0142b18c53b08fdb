"""UNet: an encoder-decoder with skip connections; its decoder ends at full input resolution (out_stride 1)."""

import torch
from torch import nn
from torch.nn import functional as F

from kp.models.blocks import conv_bn_relu


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


class UNet(nn.Module):
    dense = True  # spatial features at the input's resolution: a heatmap head is a 1×1 convolution away

    def __init__(self, in_channels: int, width: int = 16, depth: int = 3):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList([double_conv(in_channels, widths[0])])
        self.encoder.extend(double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.decoder = nn.ModuleList(double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
        self.out_channels, self.out_stride = widths[0], 1

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        bottleneck = skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return {"features": x, "bottleneck": bottleneck}
