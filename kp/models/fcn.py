"""FCN with skip fusion (Long et al. 2015, the facial seed's FCN): a VGG encoder; the deepest stage and the `skips`
stages above it are each projected by a 1×1 "score" convolution, fused coarse-to-fine by bilinear upsampling and
addition (FCN-8s is skips=2), and the fused map is upsampled bilinearly to the input resolution (out_stride 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kp.models.vgg import VGG


class FCN(nn.Module):
    dense = True  # per-pixel features at the input's resolution

    def __init__(
        self,
        in_channels: int,
        widths: list[int] = (16, 32, 64, 128),
        depths: list[int] = (1, 1, 2, 2),
        skips: int = 2,
        fuse_channels: int = 32,
    ):
        super().__init__()
        if not 0 <= skips < len(widths):
            raise ValueError(f"FCN: skips must be in [0, {len(widths) - 1}] for {len(widths)} stages, got {skips}")
        self.stages = VGG(in_channels, widths, depths).stages
        self.fused_stages = len(widths) - 1 - skips  # index of the shallowest stage that is fused
        self.scores = nn.ModuleList(nn.Conv2d(w, fuse_channels, 1) for w in widths[self.fused_stages :])
        self.out_channels, self.out_stride = fuse_channels, 1

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x, stage_outputs = images, []
        for stage in self.stages:
            x = stage(x)
            stage_outputs.append(x)
        bottleneck = stage_outputs[-1]
        fused_inputs = stage_outputs[self.fused_stages :]
        fused = self.scores[-1](bottleneck)
        for stage_output, score in zip(reversed(fused_inputs[:-1]), reversed(self.scores[:-1])):
            fused = F.interpolate(fused, size=stage_output.shape[-2:], mode="bilinear", align_corners=False)
            fused = fused + score(stage_output)
        features = F.interpolate(fused, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return {"features": features, "bottleneck": bottleneck}
