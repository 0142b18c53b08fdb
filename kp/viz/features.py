"""A look inside a trained network for one image (`kp features`, kp/cli/features.py): activations per stage, filters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from kp.inference.predictor import Predictor


def stage_outputs(net: nn.Module, images: torch.Tensor, run) -> list[tuple[str, torch.Tensor]]:
    """(name, activation 1×C×h×w) at the last convolution of each run of convolutions at one resolution in the
    backbone, recorded while `run()` does the forward pass."""
    recorded: list[tuple[str, torch.Tensor]] = []
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: recorded.append((name, o.detach())))
        for name, module in net.backbone.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    stages = []
    for index, (name, output) in enumerate(recorded):
        following = recorded[index + 1][1] if index + 1 < len(recorded) else None
        if following is None or following.shape[-2:] != output.shape[-2:]:
            stages.append((name, output))
    return stages


def filter_montage(weight: torch.Tensor) -> np.ndarray:
    """The first convolution's filters (out×in×k×k) tiled into one picture, each scaled to [0, 1] on its own;
    colour when they read three channels."""
    out_channels, in_channels, kh, kw = weight.shape
    tiles = weight.float().permute(0, 2, 3, 1).numpy()
    tiles = tiles if in_channels == 3 else tiles.mean(-1, keepdims=True).repeat(3, -1)
    low = tiles.min((1, 2, 3), keepdims=True)
    tiles = (tiles - low) / np.maximum(tiles.max((1, 2, 3), keepdims=True) - low, 1e-12)
    columns = math.ceil(math.sqrt(out_channels))
    rows = math.ceil(out_channels / columns)
    montage = np.ones((rows * (kh + 1) - 1, columns * (kw + 1) - 1, 3))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        montage[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = tile
    return montage


def plot_features(predictor: Predictor, image: np.ndarray, path: Path, maps: int = 4) -> Path:
    module = predictor.module
    tensor, _ = predictor.preprocess(image)
    batch = tensor[None].to(next(module.parameters()).device)
    result = {}
    with torch.no_grad():
        stages = stage_outputs(module.net, batch, lambda: result.update(prediction=module.locate_details(batch)))
    prediction = result["prediction"]
    first_conv = next(m for m in module.net.modules() if isinstance(m, nn.Conv2d))
    picture = tensor.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    picture = picture[..., 0] if picture.shape[-1] == 1 else picture

    columns = max(3, maps)
    fig = Figure(figsize=(2.4 * columns, 2.4 * (1 + len(stages))))
    axes = fig.subplots(1 + len(stages), columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    keypoints = prediction.keypoints[0].cpu().numpy()
    axes[0, 0].imshow(picture, cmap="gray")
    axes[0, 0].scatter(keypoints[:, 0], keypoints[:, 1], s=10, c="red", marker="x")
    axes[0, 0].set_title("input and prediction", fontsize=8)
    axes[0, 1].imshow(filter_montage(first_conv.weight.detach().cpu()), interpolation="nearest")
    axes[0, 1].set_title(f"first layer: {first_conv.out_channels} filters", fontsize=8)
    if module.codec.name == "heatmap":
        heatmaps = F.interpolate(prediction.outputs["keypoints"].float(), size=tensor.shape[-2:], mode="bilinear")
        axes[0, 2].imshow(picture, cmap="gray")
        axes[0, 2].imshow(heatmaps[0].amax(0).clamp(min=0).cpu().numpy(), cmap="inferno", alpha=0.6)
        axes[0, 2].set_title("predicted heatmaps (max over keypoints)", fontsize=8)
    for row, (name, activation) in enumerate(stages, start=1):
        activation = activation[0].float().cpu()
        strongest = activation.abs().mean((1, 2)).argsort(descending=True)[:maps]
        for column, channel in enumerate(strongest):
            axes[row, column].imshow(activation[channel].numpy(), cmap="viridis")
            axes[row, column].set_title(
                f"{name} ch {int(channel)} ({activation.shape[-1]}×{activation.shape[-2]})", fontsize=7
            )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
