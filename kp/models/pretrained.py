"""What every ImageNet-pretrained backbone shares: input normalisation, loading the published weights into an encoder
whose parameter names match them, grey input, and a top-down decoder that brings the coarse features to a stride fit
for keypoints.

An encoder is an nn.Module whose state dict has exactly the published checkpoint's keys (minus its classifier) and
whose forward returns {stride: feature map} for strides 4, 8, 16 and 32; it names its `first_conv` (the state-dict key
of the convolution that reads the image) and lists its `channels` per stride.

Grey (1-channel) input: the first convolution's pretrained weights are summed over R, G and B, so that a grey image
gives (up to the small spread of the per-channel means) the response the RGB network gives to the same image in
colour; it is normalised with the average of the channel means and standard deviations.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from kp.errors import WeightsError
from kp.models.blocks import conv_bn_relu

STRIDES = (4, 8, 16, 32)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's normalisation of [0, 1] RGB input
IMAGENET_STD = (0.229, 0.224, 0.225)
log = logging.getLogger(__name__)


def load_state_dict_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict saved with torch.save (a Lightning checkpoint's is under "state_dict")."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what}: no such file {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as error:  # not a torch file, or truncated
        raise WeightsError(
            f"{what}: cannot read {path} as a torch state dict ({type(error).__name__}: {error})"
        ) from error
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{what}: {path} holds no state dict of tensors")
    return state


class TopDownDecoder(nn.Module):
    """Feature-pyramid style: the stride-32 features, projected to `width` channels, are upsampled ×2 and added to the
    1×1-projected encoder features of each finer stride down to `out_stride`, then smoothed by a 3×3 convolution.
    The skips carry the fine spatial detail that keypoint localisation needs and the coarse stages lack."""

    def __init__(self, channels: dict[int, int], out_stride: int, width: int):
        super().__init__()
        self.strides = [s for s in reversed(STRIDES) if s >= out_stride]
        self.lateral = nn.ModuleList(nn.Conv2d(channels[s], width, 1) for s in self.strides)
        self.smooth = conv_bn_relu(width, width, 3)

    def forward(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        x = self.lateral[0](features[self.strides[0]])
        for lateral, stride in zip(self.lateral[1:], self.strides[1:]):
            skip = lateral(features[stride])
            # to the skip's own size rather than ×2: a side that is not a multiple of 32 (cards' 120 rows: 4, 8, 15)
            # rounds up at each stride, so doubling would overshoot by one
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest") + skip
        return self.smooth(x)


class PretrainedBackbone(nn.Module):
    """Normalise -> encoder (published layout, optionally pretrained) -> top-down decoder to out_stride.

    pretrained: False (random weights), True (the subclass's default source) or the path of a state-dict file.
    out_stride 32 keeps the encoder's coarse features (dense=False: regression heads and the deconvolution head work
    on them); 4, 8 or 16 adds the decoder (dense=True)."""

    def __init__(
        self,
        encoder: nn.Module,
        in_channels: int,
        pretrained: bool | str,
        out_stride: int,
        decoder_width: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ):
        super().__init__()
        name = type(self).__name__
        if out_stride not in STRIDES:
            raise ValueError(f"{name}: out_stride must be one of {STRIDES}, got {out_stride}")
        if in_channels not in (1, 3):
            raise ValueError(
                f"{name}: ImageNet backbones read 1 (grey) or 3 (RGB) channels, the data has {in_channels}"
            )
        self.encoder = encoder
        self.pretrained = bool(pretrained)
        if pretrained:
            if pretrained is True:
                state, source = self.default_weights()
            else:
                state, source = load_state_dict_file(pretrained, f"model.backbone.pretrained ({name})"), pretrained
            self._load_encoder(state, in_channels, source)
            log.info(
                "backbone %s: ImageNet weights from %s, %d tensors", self.arch, source, len(self.encoder.state_dict())
            )
        # Kept out of the state dict: they are a property of the weights, not learned.
        mean_, std_ = torch.tensor(list(mean), dtype=torch.float32), torch.tensor(list(std), dtype=torch.float32)
        if in_channels == 1:
            mean_, std_ = mean_.mean(0, keepdim=True), std_.mean(0, keepdim=True)
        self.register_buffer("mean", mean_.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_.view(1, -1, 1, 1), persistent=False)
        self.decoder = TopDownDecoder(encoder.channels, out_stride, decoder_width) if out_stride < 32 else None
        self.out_channels = decoder_width if self.decoder else encoder.channels[32]
        self.out_stride, self.dense = out_stride, out_stride < 32

    @property
    def arch(self) -> str:
        """The architecture's name, as its config file names it (resnet18, efficientnet_lite0)."""
        raise NotImplementedError

    def default_weights(self) -> tuple[dict[str, torch.Tensor], str]:
        """The published ImageNet state dict that pretrained=true loads (each backbone knows where it lives), and
        where it came from (a package or a file), for the log."""
        raise NotImplementedError

    def _load_encoder(self, state: dict[str, torch.Tensor], in_channels: int, source: str) -> None:
        """Load every encoder tensor from `state`; anything missing or left over (but the classifier) is an error:
        a silently half-loaded backbone would train as if from scratch."""
        state = {key: value for key, value in state.items() if not key.startswith(self.encoder.classifier)}
        first = self.encoder.first_conv
        if in_channels == 1 and first in state:
            state[first] = state[first].sum(1, keepdim=True)  # grey: see the module docstring
        expected = self.encoder.state_dict()
        missing = sorted(expected.keys() - state.keys())
        unexpected = sorted(state.keys() - expected.keys())
        wrong_shape = [key for key in expected.keys() & state.keys() if expected[key].shape != state[key].shape]
        if missing or unexpected or wrong_shape:
            raise WeightsError(
                f"{type(self).__name__}: the weights from {source} do not fit (missing "
                f"{missing[:3]}, unexpected {unexpected[:3]}, other shape {wrong_shape[:3]}); "
                f"is it the right architecture's ImageNet state dict?"
            )
        self.encoder.load_state_dict(state)

    def pretrained_modules(self) -> list[nn.Module]:
        """The layers that came from the ImageNet weights (none without them)."""
        return [self.encoder] if self.pretrained else []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder((x - self.mean) / self.std)
        return {"features": self.decoder(features) if self.decoder else features[32], "bottleneck": features[32]}
