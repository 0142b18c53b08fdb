"""The evaluation report's figures (kp.evaluation.report): PCK curve, error per keypoint, error against score,
counts. Each takes the numbers the report computed and writes one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def pck_curve(thresholds: np.ndarray, pck: np.ndarray, auc: float, norm: str, path: Path) -> Path:
    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    ax.plot(thresholds, pck, color="tab:blue", label=f"AUC {auc:.3f}")
    ax.set(
        xlabel=f"threshold (fraction of {norm})",
        ylabel="PCK: fraction within threshold",
        ylim=(0, 1.02),
        xlim=(0, thresholds[-1]),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def keypoint_errors(errors: list[np.ndarray], names: list[str], path: Path) -> Path:
    """A box per keypoint of its errors (visible keypoints only); a keypoint never visible gets an empty slot."""
    fig = Figure(figsize=(max(5, 0.35 * len(names) + 2), 3.8))
    ax = fig.subplots()
    ax.boxplot([e if len(e) else [np.nan] for e in errors], showfliers=True, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="error (input px)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def error_against_score(errors: np.ndarray, scores: np.ndarray, path: Path) -> Path:
    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    ax.scatter(scores, errors, s=4, alpha=0.4)
    ax.set(xlabel="score", ylabel="error (input px)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def counts(true: np.ndarray, predicted: np.ndarray, unit: str, path: Path) -> Path:
    """Predicted against true count, and the histogram of the count error."""
    fig = Figure(figsize=(8, 3.6))
    left, right = fig.subplots(1, 2)
    left.scatter(true, predicted, s=8, alpha=0.6)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    left.plot([low, high], [low, high], color="grey", linewidth=0.8)
    left.set(xlabel=f"true count ({unit})", ylabel=f"predicted count ({unit})")
    right.hist(predicted - true, bins=30)
    right.set(xlabel=f"count error ({unit})", ylabel="samples")
    return _save(fig, path)
