"""Pictures: predicted keypoints against the ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training runs on headless machines
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from kp.data.base import KeypointMeta  # noqa: E402


def plot_predictions(images: torch.Tensor, target: torch.Tensor, visible: torch.Tensor, pred: torch.Tensor,
                     meta: KeypointMeta, path: str | Path, columns: int = 4) -> Path:
    """A grid of images: ground truth as green circles, predictions as red crosses with the skeleton, and a yellow
    line from each visible ground-truth keypoint to its prediction (its error). Invisible ground truth is not drawn."""
    n = len(images)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, gt, vis, pr in zip(axes.flat, images, target, visible, pred):
        picture = image.permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", interpolation="nearest")
        for i, j in meta.skeleton:
            ax.plot(pr[[i, j], 0], pr[[i, j], 1], color="red", linewidth=0.8, alpha=0.6)
        for g, p in zip(gt[vis], pr[vis]):
            ax.plot([g[0], p[0]], [g[1], p[1]], color="yellow", linewidth=0.8)
        ax.scatter(gt[vis, 0], gt[vis, 1], s=18, facecolors="none", edgecolors="lime", linewidths=1.2)
        ax.scatter(pr[:, 0], pr[:, 1], s=14, c="red", marker="x", linewidths=1.0)
        error = (gt[vis] - pr[vis]).norm(dim=-1).mean().item() if vis.any() else float("nan")
        ax.set_title(f"mean error {error:.1f} px", fontsize=8)
    fig.suptitle("green: ground truth · red: prediction · yellow: error", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

