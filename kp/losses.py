"""Loss terms. The config's `loss` group is a dict of named terms; the total is the sum of weight × term, and each
term is logged under its name. A term reads the model's output dict and the encoded target dict."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LossTerm(nn.Module):
    """A weighted loss on one model output; `requires` names the outputs it reads (checked at start)."""

    requires: tuple[str, ...] = ()

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean squared error over keypoints with weight > 0. pred/target are B×K×… and weights B×K: a zero-weight
    keypoint contributes exactly nothing to the value or the gradient, even when its prediction or target is NaN or
    inf (selected away, not multiplied by 0, since NaN × 0 is NaN), and the mean is over weighted keypoints only, so
    missing labels do not dilute the loss."""
    error = (pred.float() - target.float()) ** 2
    per_keypoint = error.flatten(2).mean(-1)  # B×K
    per_keypoint = torch.where(weights > 0, per_keypoint, torch.zeros_like(per_keypoint))
    return (per_keypoint * weights).sum() / weights.sum().clamp(min=1)


class MaskedMSE(LossTerm):
    """Masked MSE on the keypoint output (heatmaps or normalised coordinates, whatever the codec encodes). Outputs
    listed under `intermediate` (earlier stacks of a stacked hourglass) get the same target, each scaled by
    `intermediate_weight`."""

    requires = ("keypoints",)

    def __init__(self, weight: float = 1.0, intermediate_weight: float = 1.0):
        super().__init__(weight)
        self.intermediate_weight = intermediate_weight

    def forward(self, outputs: dict, targets: dict) -> torch.Tensor:
        weights = targets["keypoint_weights"]
        loss = masked_mse(outputs["keypoints"], targets["keypoints"], weights)
        for stack in outputs.get("intermediate", []):
            loss = loss + self.intermediate_weight * masked_mse(stack, targets["keypoints"], weights)
        return loss


class VisibilityBCE(LossTerm):
    """Binary cross-entropy between the visibility logits and the `visible` flags."""

    requires = ("visibility",)

    def forward(self, outputs: dict, targets: dict) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs["visibility"].float(), targets["visible"].float())


class CountMSE(LossTerm):
    """MSE between the predicted and the true normalised count."""

    requires = ("count",)

    def forward(self, outputs: dict, targets: dict) -> torch.Tensor:
        return F.mse_loss(outputs["count"].float(), targets["count"].float())
