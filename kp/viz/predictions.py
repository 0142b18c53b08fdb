"""Predicted keypoints against the ground truth, with their uncertainty circles where known."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from kp.data.base import KeypointMeta


def plot_predictions(
    images: torch.Tensor,
    target: torch.Tensor,
    visible: torch.Tensor,
    pred: torch.Tensor,
    meta: KeypointMeta,
    path: str | Path,
    columns: int = 4,
    radius: torch.Tensor | None = None,
    titles: list[str] | None = None,
) -> Path:
    """A grid of images: ground truth as green circles, predictions as red crosses with the skeleton, and a yellow
    line from each visible ground-truth keypoint to its prediction (its error). Invisible ground truth is not drawn.
    radius (B×K, input pixels): the calibrated uncertainty circle around each prediction (cyan). titles: one line
    above each image (default: its mean error)."""
    n = len(images)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(2.6 * columns, 2.6 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for index, (ax, image, gt, vis, pr) in enumerate(zip(axes.flat, images, target, visible, pred)):
        picture = image.permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", interpolation="nearest")
        for i, j in meta.skeleton:
            ax.plot(pr[[i, j], 0], pr[[i, j], 1], color="red", linewidth=0.8, alpha=0.6)
        for g, p in zip(gt[vis], pr[vis]):
            ax.plot([g[0], p[0]], [g[1], p[1]], color="yellow", linewidth=0.8)
        if radius is not None:
            for p, r in zip(pr, radius[index]):
                if math.isfinite(float(r)):
                    ax.add_patch(
                        Circle((float(p[0]), float(p[1])), float(r), fill=False, color="cyan", linewidth=0.7, alpha=0.8)
                    )
        ax.scatter(gt[vis, 0], gt[vis, 1], s=18, facecolors="none", edgecolors="lime", linewidths=1.2)
        ax.scatter(pr[:, 0], pr[:, 1], s=14, c="red", marker="x", linewidths=1.0)
        if titles is not None:
            ax.set_title(titles[index], fontsize=7)
        else:
            error = (gt[vis] - pr[vis]).norm(dim=-1).mean().item() if vis.any() else float("nan")
            ax.set_title(f"mean error {error:.1f} px", fontsize=8)
        ax.set_xlim(-0.5, picture.shape[1] - 0.5)
        ax.set_ylim(picture.shape[0] - 0.5, -0.5)
    legend = "green: ground truth · red: prediction · yellow: error"
    fig.suptitle(legend + (" · cyan: uncertainty radius" if radius is not None else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
