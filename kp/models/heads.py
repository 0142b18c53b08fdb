"""Heads: the layers between a backbone's features and the net's outputs (KeypointNet picks and wires them)."""

from __future__ import annotations

import math

import torch
from torch import nn


class HeatmapHead(nn.Module):
    """Features at the backbone's stride -> K heatmaps at the codec's stride: deconvolutions (SimpleBaseline) when the
    features are coarser, average pooling when they are finer, then a 1×1 convolution. The two strides must differ by
    a power of two (KeypointNet checks)."""

    def __init__(self, in_channels: int, num_keypoints: int, in_stride: int, out_stride: int, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        if in_stride > out_stride:
            for _ in range(round(math.log2(in_stride // out_stride))):
                layers += [
                    nn.ConvTranspose2d(in_channels, width, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                in_channels = width
        elif in_stride < out_stride:
            layers.append(nn.AvgPool2d(out_stride // in_stride))
        final = nn.Conv2d(in_channels, num_keypoints, 1)
        # Start from near-empty heatmaps (as SimpleBaseline and MMPose do): a random 1×1 conv would start far above
        # the all-zero loss and waste the first steps undoing its own noise.
        nn.init.normal_(final.weight, std=0.001)
        nn.init.zeros_(final.bias)
        self.layers = nn.Sequential(*layers, final)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class RegressionHead(nn.Module):
    """Flattened features -> hidden fully connected layer with dropout -> K×2 coordinates in [-1, 1] (unbounded: no
    tanh, so that keypoints near the border are as easy to reach as any other)."""

    def __init__(self, in_features: int, num_keypoints: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_keypoints * 2),
        )
        self.num_keypoints = num_keypoints

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).view(-1, self.num_keypoints, 2)


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Integral regression (Sun et al. 2018): the softmax-weighted mean position of each heatmap, in [-1, 1] of the
    *input* (pixel centres of an h-pixel heatmap lie at (2i + 1)/h - 1, matching the coords codec's convention).
    Computed in float32 even under autocast: a bf16 softmax over thousands of pixels loses the peak's position."""
    b, k, h, w = heatmaps.shape
    probs = heatmaps.float().reshape(b, k, h * w).softmax(-1).view(b, k, h, w)
    xs = (2 * torch.arange(w, device=heatmaps.device, dtype=probs.dtype) + 1) / w - 1
    ys = (2 * torch.arange(h, device=heatmaps.device, dtype=probs.dtype) + 1) / h - 1
    return torch.stack([(probs.sum(2) * xs).sum(-1), (probs.sum(3) * ys).sum(-1)], dim=-1)


class GlobalHead(nn.Module):
    """Image-level outputs from one pooled feature vector: `visibility` (K logits) and/or `count` (the normalised
    count), after an optional shared hidden layer."""

    def __init__(self, in_features: int, num_keypoints: int, visibility: bool, count: bool, hidden: int = 0):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True)) if hidden else nn.Identity()
        width = hidden or in_features
        self.visibility = nn.Linear(width, num_keypoints) if visibility else None
        self.count = nn.Linear(width, 1) if count else None

    def forward(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        vector = self.trunk(vector)
        outputs = {}
        if self.visibility is not None:
            outputs["visibility"] = self.visibility(vector)
        if self.count is not None:
            outputs["count"] = self.count(vector).squeeze(1)
        return outputs
