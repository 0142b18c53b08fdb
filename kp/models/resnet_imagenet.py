"""ResNet-18/34/50 (He et al. 2016) in torchvision's parameter layout (`conv1`, `bn1`, `layer1.0.conv1`, ...,
`layerN.0.downsample.0/1`), so that torchvision's ImageNet weights load into it without torchvision.

pretrained=true downloads torchvision's weights once into the torch hub cache (`torch.hub.get_dir()`/checkpoints);
pretrained=/path/to/resnet18-f37072fd.pth reads a file you downloaded. The small ResNet trained from scratch is
kp/models/resnet.py (model=resnet).
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from kp.errors import WeightsError
from kp.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, PretrainedBackbone

WEIGHTS_URL = "https://download.pytorch.org/models/"
# depth -> (block type, blocks per stage, torchvision's ImageNet weights file; ResNet-50: the V1 weights)
DEPTHS = {
    18: ("basic", [2, 2, 2, 2], "resnet18-f37072fd.pth"),
    34: ("basic", [3, 4, 6, 3], "resnet34-b627a593.pth"),
    50: ("bottleneck", [3, 4, 6, 3], "resnet50-0676ba61.pth"),
}


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(in_channels, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride, as torchvision's "V1.5"), 1×1 expand ×4."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = _downsample(in_channels, width * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(y)))))
        return torch.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNetEncoder(nn.Module):
    first_conv, classifier = "conv1.weight", "fc."

    def __init__(self, in_channels: int, depth: int):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ImageNetResNet: depth must be one of {sorted(DEPTHS)}, got {depth}")
        kind, blocks, _ = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        previous, self.channels = 64, {}
        for i, (count, width) in enumerate(zip(blocks, [64, 128, 256, 512])):
            layer = []
            for j in range(count):
                layer.append(block(previous, width, 2 if i > 0 and j == 0 else 1))
                previous = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            self.channels[4 * 2**i] = previous

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        features = {}
        for i, stride in enumerate(self.channels):
            x = features[stride] = getattr(self, f"layer{i + 1}")(x)
        return features


class ImageNetResNet(PretrainedBackbone):
    def __init__(
        self,
        in_channels: int,
        depth: int = 18,
        pretrained: bool | str = True,
        out_stride: int = 8,
        decoder_width: int = 64,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ):
        self.depth = depth
        super().__init__(
            ResNetEncoder(in_channels, depth), in_channels, pretrained, out_stride, decoder_width, mean, std
        )

    @property
    def arch(self) -> str:
        return f"resnet{self.depth}"

    def default_weights(self) -> tuple[dict[str, torch.Tensor], str]:
        filename = DEPTHS[self.depth][2]
        url = WEIGHTS_URL + filename
        try:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
            return state, str(Path(torch.hub.get_dir()) / "checkpoints" / filename)
        except URLError as error:
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            raise WeightsError(
                f"cannot download the ResNet-{self.depth} ImageNet weights ({error.reason}): download "
                f"{url} into {cache}/ or set model.backbone.pretrained=/path/to/{filename}"
            ) from error
