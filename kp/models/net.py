"""KeypointNet: a backbone plus the heads the target codec and the loss terms ask for.

A backbone is any nn.Module built as `backbone(in_channels=C)` that maps B×C×H×W images to a feature map and has
  out_channels  channels of that feature map
  out_stride    input pixels per feature-map pixel
  dense         True for encoder-decoder nets whose features are meant for per-pixel output (UNet, hourglass)

The net returns a dict:
  keypoints   heatmaps B×K×(H/stride)×(W/stride) for target=heatmap; coordinates B×K×2 in [-1, 1] for target=coords
  visibility  B×K logits (when visibility_head)
  count       B normalised counts (when count_head)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from kp.models.blocks import conv_bn_relu

TARGETS = ("heatmap", "coords")


class HeatmapHead(nn.Module):
    """Features at the backbone's stride -> K heatmaps at the codec's stride: deconvolutions (SimpleBaseline) when the
    features are coarser, average pooling when they are finer, then a 1×1 convolution."""

    def __init__(self, in_channels: int, num_keypoints: int, in_stride: int, out_stride: int, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        if in_stride > out_stride:
            for _ in range(int(math.log2(in_stride // out_stride))):
                layers += [nn.ConvTranspose2d(in_channels, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                in_channels = width
        elif in_stride < out_stride:
            layers.append(nn.AvgPool2d(out_stride // in_stride))
        layers.append(nn.Conv2d(in_channels, num_keypoints, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class RegressionHead(nn.Module):
    """Flattened features -> hidden fully connected layer with dropout -> K×2 coordinates."""

    def __init__(self, in_features: int, num_keypoints: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout), nn.Linear(hidden, num_keypoints * 2))
        self.num_keypoints = num_keypoints

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).view(-1, self.num_keypoints, 2)


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Integral regression: the softmax-weighted mean position of each heatmap, in [-1, 1] of the *input* (pixel
    centres of an h-pixel heatmap lie at (2i + 1)/h - 1, matching the coords codec's convention)."""
    b, k, h, w = heatmaps.shape
    probs = heatmaps.flatten(2).softmax(-1).view(b, k, h, w)
    xs = (2 * torch.arange(w, device=heatmaps.device, dtype=probs.dtype) + 1) / w - 1
    ys = (2 * torch.arange(h, device=heatmaps.device, dtype=probs.dtype) + 1) / h - 1
    return torch.stack([(probs.sum(2) * xs).sum(-1), (probs.sum(3) * ys).sum(-1)], dim=-1)


class KeypointNet(nn.Module):
    def __init__(
        self,
        backbone: Callable[..., nn.Module],
        num_keypoints: int,
        input_shape: tuple[int, int, int],
        target: str,
        stride: int = 1,
        visibility_head: bool = False,
        count_head: bool = False,
        head_width: int = 64,
        regression_hidden: int = 256,
        dropout: float = 0.0,
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        channels, height, width = input_shape
        self.backbone = backbone(in_channels=channels)
        self.target = target
        with torch.no_grad():  # one dry run tells the feature map's size, which the regression head needs
            was_training = self.backbone.training
            features = self.backbone.eval()(torch.zeros(1, channels, height, width))
            self.backbone.train(was_training)
        feat_channels, in_stride = self.backbone.out_channels, self.backbone.out_stride
        if target == "heatmap" or self.backbone.dense:
            # Dense backbones reach coordinates through the integral (soft-argmax) head at the codec's stride.
            self.heatmap_head = HeatmapHead(feat_channels, num_keypoints, in_stride, stride, head_width)
        else:
            self.regression_head = RegressionHead(features[0].numel(), num_keypoints, regression_hidden, dropout)
        self.visibility_head = nn.Linear(feat_channels, num_keypoints) if visibility_head else None
        self.count_head = nn.Linear(feat_channels, 1) if count_head else None

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        if hasattr(self, "heatmap_head"):
            heatmaps = self.heatmap_head(features)
            outputs = {"keypoints": heatmaps if self.target == "heatmap" else soft_argmax(heatmaps)}
        else:
            outputs = {"keypoints": self.regression_head(features)}
        pooled = F.adaptive_avg_pool2d(features, 1).flatten(1)
        if self.visibility_head is not None:
            outputs["visibility"] = self.visibility_head(pooled)
        if self.count_head is not None:
            outputs["count"] = self.count_head(pooled).squeeze(1)
        return outputs
