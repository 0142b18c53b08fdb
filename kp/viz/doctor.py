"""The label doctor's figures (kp.evaluation.doctor): label coverage per keypoint, and grids of samples with their
labels and what the doctor suspects (a duplicate, a swapped pair, the mean shape, the model's points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


@dataclass
class Panel:
    """One sample in a grid: its image, its labelled points in lime and each overlay's points as crosses."""

    image: np.ndarray  # H×W×C uint8
    keypoints: np.ndarray  # K×2 in the image's pixels
    labelled: np.ndarray  # K bool: the points drawn as labels
    title: str
    overlays: list[tuple[np.ndarray, str, str]] = field(default_factory=list)  # (N×2 points, colour, legend name)


def coverage(path: Path, fractions: dict[str, np.ndarray], names: list[str]) -> Path:
    """A bar per keypoint and split: the fraction of the split's images where the keypoint is labelled."""
    fig = Figure(figsize=(max(6, 0.25 * len(names)), 3))
    ax = fig.subplots()
    width = 0.8 / len(fractions)
    for n, (split, fraction) in enumerate(fractions.items()):
        ax.bar(np.arange(len(names)) + n * width, fraction, width, label=split)
    ax.set_xticks(np.arange(len(names)) + width, names, rotation=90, fontsize=6)
    ax.set_ylabel("fraction labelled")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def grid(path: Path, panels: list[Panel], columns: int = 4) -> Path:
    """The panels in rows of `columns` (an empty grid still writes a blank picture, so report.md's link holds)."""
    rows = max(1, -(-len(panels) // columns))
    fig = Figure(figsize=(3 * columns, 3 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        ax.axis("on")
        _draw(ax, panel)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _draw(ax, panel: Panel) -> None:
    image = panel.image
    ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray")
    shown = panel.labelled
    ax.scatter(
        panel.keypoints[shown, 0],
        panel.keypoints[shown, 1],
        s=10,
        c="lime",
        edgecolors="black",
        linewidths=0.3,
        label="label",
    )
    for points, colour, name in panel.overlays:
        ax.scatter(points[:, 0], points[:, 1], s=10, c=colour, marker="x", linewidths=0.8, label=name)
    ax.set_title(panel.title, fontsize=6)
    ax.set_xticks([])
    ax.set_yticks([])
