"""KeypointNet: a backbone plus the heads the target codec and the config ask for.

A backbone is any nn.Module built as `backbone(in_channels=C)` with attributes
  out_channels  channels of its output feature map
  out_stride    input pixels per feature-map pixel
  dense         True for encoder-decoder nets whose features are meant for per-pixel output (UNet, FCN, hourglass),
                False for classification-style nets with coarse features (VGG, ResNet, MobileNet)
whose forward returns a dict
  features      the feature map the keypoint head reads
  bottleneck    the coarsest encoder features (the same tensor as `features` for classification-style nets)
  intermediate  (stacked hourglass) the earlier stacks' feature maps, each given its own heatmap head

Keypoint heads, by target and backbone:
  target=heatmap                     HeatmapHead: a 1×1 conv, after deconvolutions (coarse features) or average
                                     pooling (finer features) to reach the codec's stride
  target=coords, coords_head=regression  fully connected on the flattened features (classification-style only)
  target=coords, coords_head=integral    HeatmapHead + soft-argmax (any backbone)
  coords_head=auto                   integral for dense backbones, regression for the others

The net returns a dict:
  keypoints     heatmaps B×K×(H/stride)×(W/stride) for target=heatmap; coordinates B×K×2 in [-1, 1] for target=coords
  intermediate  (stacked hourglass with n_stacks > 1) the earlier stacks' predictions, each shaped like `keypoints`
  visibility    B×K logits (when visibility_head)
  count         B normalised counts (when count_head)

Visibility and count read one vector: the global average of `features` (head_features=features) or of the
`bottleneck`, optionally concatenated with the predicted heatmaps, detached and max-pooled to a
heatmap_pool×heatmap_pool grid (the card seed: where the corners are tells how thick the pack is, but the count loss
must not pull the heatmaps).

Fine-tuning (backbones with ImageNet weights, kp/models/pretrained.py): the pretrained layers learn at
pretrained_lr_scale × the optimizer's learning rate (parameter_groups) and are frozen for the first freeze_epochs
epochs (kp.train.callbacks.FreezePretrained). The visibility/count heads learn at global_head_lr_scale × that rate:
under AdamW each weight moves by about the learning rate a step whatever the loss's weight, so a small head reading
moving features swings with it (the cards count, docs/presets.md). init_from loads every tensor of another run's
weights whose name and shape match (kp/models/init_from.py), after the backbone's pretrained weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from kp.models.heads import GlobalHead, HeatmapHead, RegressionHead, soft_argmax
from kp.models.init_from import load_matching

TARGETS = ("heatmap", "coords")
COORDS_HEADS = ("auto", "regression", "integral")
HEAD_FEATURES = ("features", "bottleneck")
CLASSIFICATION_BACKBONES = "simple_cnn, vgg, resnet, mobilenet"


@dataclass(frozen=True)
class HeadOptions:
    """The heads on top of the backbone (the table above): how coordinates are read, the heatmap head's width, the
    regression head's size, and the optional visibility/count heads and what they read."""

    coords_head: str = "auto"  # target=coords: auto | regression | integral
    head_width: int = 64  # channels of the heatmap head's deconvolutions
    regression_hidden: int = 256  # hidden units of the regression head
    dropout: float = 0.0  # before the regression head's output layer
    visibility_head: bool = False
    count_head: bool = False
    head_features: str = "features"  # what the visibility/count heads pool: features | bottleneck
    heatmap_pool: int = 0  # > 0: the visibility/count heads also see the detached heatmaps pooled to this grid
    head_hidden: int = 0  # hidden units shared by the visibility/count heads (0: linear heads)

    def __post_init__(self):
        if self.coords_head not in COORDS_HEADS:
            raise ValueError(f"coords_head must be one of {COORDS_HEADS}, got {self.coords_head!r}")
        if self.head_features not in HEAD_FEATURES:
            raise ValueError(f"head_features must be one of {HEAD_FEATURES}, got {self.head_features!r}")


@dataclass(frozen=True)
class FineTuning:
    """How training treats pretrained weights (the paragraph above)."""

    freeze_epochs: int = 0  # epochs with the pretrained layers frozen (kp.train.callbacks.FreezePretrained)
    pretrained_lr_scale: float = 1.0  # their learning rate, as a fraction of the optimizer's
    global_head_lr_scale: float = 1.0  # the visibility/count heads' learning rate, as a fraction of the optimizer's
    init_from: str | None = None  # a run dir, .ckpt or state dict whose matching tensors are loaded


FINE_TUNING_OPTIONS = {option.name for option in fields(FineTuning)}


class KeypointNet(nn.Module):
    def __init__(
        self,
        backbone: Callable[..., nn.Module],
        num_keypoints: int,
        input_shape: tuple[int, int, int],
        target: str,
        stride: int = 1,
        heads: HeadOptions = HeadOptions(),
        tuning: FineTuning = FineTuning(),
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        channels, height, width = input_shape
        self.backbone = backbone(in_channels=channels)
        dry_run = self._dry_run(channels, height, width)
        self.target, self.head_features, self.heatmap_pool = target, heads.head_features, heads.heatmap_pool
        self.regression_head, self.heatmap_heads = self._keypoint_heads(dry_run, num_keypoints, target, stride, heads)
        if heads.heatmap_pool and self.heatmap_heads is None:
            raise ValueError(
                "heatmap_pool feeds the predicted heatmaps to the visibility/count heads: it needs "
                "target=heatmap or coords_head=integral, not coords_head=regression"
            )
        self.global_head = None
        if heads.visibility_head or heads.count_head:
            vector_size = dry_run[heads.head_features].shape[1] + num_keypoints * heads.heatmap_pool**2
            self.global_head = GlobalHead(
                vector_size, num_keypoints, heads.visibility_head, heads.count_head, heads.head_hidden
            )
        self.freeze_epochs, self.pretrained_lr_scale = tuning.freeze_epochs, tuning.pretrained_lr_scale
        self.global_head_lr_scale = tuning.global_head_lr_scale
        if tuning.init_from:
            load_matching(self, tuning.init_from)

    @classmethod
    def from_config(cls, backbone, num_keypoints, input_shape, target, stride=1, **options) -> KeypointNet:
        """The model configs' entry point (`_target_: kp.models.KeypointNet.from_config`): the options flat, as
        `model.visibility_head=true` spells them, each a field of FineTuning or HeadOptions (an unknown key is a
        TypeError naming it)."""
        tuning = {name: options.pop(name) for name in FINE_TUNING_OPTIONS if name in options}
        return cls(backbone, num_keypoints, input_shape, target, stride, HeadOptions(**options), FineTuning(**tuning))

    def _dry_run(self, channels: int, height: int, width: int) -> dict:
        """The backbone's outputs for one blank image (their sizes shape the heads); ValueError when the input size
        does not fit its stride."""
        with torch.no_grad():
            was_training = self.backbone.training
            outputs = self.backbone.eval()(torch.zeros(1, channels, height, width))
            self.backbone.train(was_training)
        name, in_stride = type(self.backbone).__name__, self.backbone.out_stride
        size = outputs["features"].shape[-2:]
        if height % in_stride or width % in_stride or size != (height // in_stride, width // in_stride):
            raise ValueError(
                f"input {height}×{width} gives {name} features of {tuple(size)}: the "
                f"input size must be a multiple of its stride {in_stride} (change the data's image size)"
            )
        return outputs

    def _keypoint_heads(self, dry_run: dict, num_keypoints: int, target: str, stride: int, heads: HeadOptions):
        """(regression head, None) or (None, one heatmap head per stack), by target and coords_head."""
        name, in_stride = type(self.backbone).__name__, self.backbone.out_stride
        coords_head = heads.coords_head
        if coords_head == "auto":
            coords_head = "integral" if self.backbone.dense else "regression"
        if target == "coords" and coords_head == "regression":
            if self.backbone.dense:
                raise ValueError(
                    f"coords_head=regression needs a classification-style backbone "
                    f"({CLASSIFICATION_BACKBONES}); {name} is an encoder-decoder: use coords_head=integral"
                )
            in_features = dry_run["features"][0].numel()
            return RegressionHead(in_features, num_keypoints, heads.regression_hidden, heads.dropout), None
        ratio = max(in_stride, stride) / min(in_stride, stride)
        if ratio != 2 ** round(math.log2(ratio)):
            raise ValueError(
                f"heatmap stride {stride} and {name}'s feature stride {in_stride} must differ by a "
                f"power of two: valid heatmap strides are {in_stride} times 1, 2, 4… or 1/2, 1/4…"
            )
        # One head per stack: the last reads `features`, the others the stacks listed under `intermediate`.
        n_heads = 1 + len(dry_run.get("intermediate", []))
        return None, nn.ModuleList(
            HeatmapHead(self.backbone.out_channels, num_keypoints, in_stride, stride, heads.head_width)
            for _ in range(n_heads)
        )

    def pretrained_modules(self) -> list[nn.Module]:
        """The backbone's layers that hold ImageNet weights (empty for backbones trained from scratch)."""
        return self.backbone.pretrained_modules() if hasattr(self.backbone, "pretrained_modules") else []

    def parameter_groups(self) -> list[dict]:
        """Optimizer parameter groups: the new layers, the visibility/count heads and the pretrained layers, the last
        two with an `lr_scale` (applied by KeypointModule.configure_optimizers); empty groups are left out."""
        pretrained = [p for module in self.pretrained_modules() for p in module.parameters()]
        global_head = list(self.global_head.parameters()) if self.global_head is not None else []
        ids = {id(p) for p in pretrained + global_head}
        groups = [{"params": [p for p in self.parameters() if id(p) not in ids], "name": "new"}]
        if global_head:
            groups.append({"params": global_head, "name": "global_head", "lr_scale": self.global_head_lr_scale})
        if pretrained:
            groups.append({"params": pretrained, "name": "pretrained", "lr_scale": self.pretrained_lr_scale})
        return groups

    def _keypoints(self, heatmaps: torch.Tensor) -> torch.Tensor:
        return heatmaps if self.target == "heatmap" else soft_argmax(heatmaps)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        backbone_out = self.backbone(images)
        heatmaps = None
        if self.regression_head is not None:
            outputs = {"keypoints": self.regression_head(backbone_out["features"])}
        else:
            *earlier_heads, last_head = self.heatmap_heads
            heatmaps = last_head(backbone_out["features"])
            outputs = {"keypoints": self._keypoints(heatmaps)}
            if earlier_heads:
                outputs["intermediate"] = [
                    self._keypoints(head(stack)) for head, stack in zip(earlier_heads, backbone_out["intermediate"])
                ]
        if self.global_head is not None:
            vector = F.adaptive_avg_pool2d(backbone_out[self.head_features], 1).flatten(1)
            if self.heatmap_pool:
                pooled_heatmaps = F.adaptive_max_pool2d(heatmaps.detach(), self.heatmap_pool).flatten(1)
                vector = torch.cat([vector, pooled_heatmaps.to(vector.dtype)], dim=1)
            outputs.update(self.global_head(vector))
        return outputs
