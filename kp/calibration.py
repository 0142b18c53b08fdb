"""Calibrated uncertainty: a radius per predicted keypoint that holds the true point with probability 1 - alpha.

Split conformal prediction with a scaled residual (Lei et al. 2018; Angelopoulos & Bates 2021, "A gentle
introduction to conformal prediction", section 2.3): on the validation split, each visible keypoint's error in input
pixels is divided by the prediction's difficulty (`difficulty` below), and the ceil((n + 1)(1 - alpha))-th smallest
of these n ratios is the keypoint's scale. A new prediction's radius is scale × its difficulty: small circles where
the model is sure, big ones where it is not. If the calibration and test samples are exchangeable, the true point
lies inside the circle with probability at least 1 - alpha (and at most 1 - alpha + 1/(n + 1)).

A keypoint with fewer than MIN_PER_KEYPOINT visible calibration points uses the scale of all keypoints pooled (a
small split cannot give a 90 % quantile of its own). The calibration is stored inside the checkpoint, under
"kp_calibration" and per flip mode, so `kp.load` hands it to the Predictor with the weights.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from kp.defaults import MISS_RATE

MIN_PER_KEYPOINT = 30
CHECKPOINT_KEY = "kp_calibration"
# The formula of `difficulty`, stored with each calibration: a scale fitted on another formula would give wrong
# radii, so a checkpoint calibrated by an older kp is treated as uncalibrated (kp evaluate recalibrates it).
DIFFICULTY = "spread*(surprise+image_surprise)"
SCORE_RANGE = (1e-3, 0.99)  # scores are clipped to it before the log: a peak above 1 or at 0 stays finite


def difficulty(spread: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """B×K difficulty in input pixels: the prediction's spread (heatmap spread, combined with the flip disagreement
    under flip test) × (its surprise + the image's mean surprise), surprise = -log(score).

    Why both factors: the spread alone hardly separates the bad predictions (docs/evaluation.md, "Figures:
    calibrated uncertainty of the presets": worst-tenth over best-tenth radius 1.0-1.2 on the presets), because a
    low, wrong peak can be as narrow as a right one; a low peak score flags it, and an image whose keypoints are all
    unsure (blur, occlusion, an unusual face) is likely wrong everywhere. The image's mean surprise keeps the range
    moderate: the keypoint's own surprise alone spans 1:700 between scores 0.99 and 0.001 and inflates the mean
    circle."""
    surprise = -scores.float().clamp(*SCORE_RANGE).log()
    return spread * (surprise + surprise.mean(-1, keepdim=True))


@dataclass
class Calibration:
    alpha: float  # the radius misses the true point with probability alpha
    flip: bool  # the difficulty it was fitted on: with or without flip test
    scale: list[float]  # per keypoint: radius = scale × difficulty (inf: too few calibration points even pooled)
    count: list[int]  # visible calibration points per keypoint
    pooled: list[bool]  # per keypoint: the scale is the pooled one (fewer than MIN_PER_KEYPOINT points)
    difficulty: str = DIFFICULTY  # the formula the scale was fitted on

    def radius(self, difficulty: np.ndarray | torch.Tensor) -> np.ndarray:
        """B×K difficulties (input pixels) -> B×K radii (input pixels)."""
        difficulty = difficulty.detach().float().cpu().numpy() if torch.is_tensor(difficulty) else difficulty
        return np.asarray(difficulty, np.float64) * np.asarray(self.scale)

    def to_dict(self) -> dict:
        return asdict(self)


def conformal_quantile(ratios: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha))-th smallest ratio; inf when n is too small for that rank to exist."""
    n = len(ratios)
    rank = math.ceil((n + 1) * (1 - alpha))
    return float(np.sort(ratios)[rank - 1]) if 0 < rank <= n else math.inf


def calibrate(
    errors: np.ndarray, difficulty: np.ndarray, visible: np.ndarray, alpha: float = MISS_RATE, flip: bool = False
) -> Calibration:
    """errors, difficulty N×K (input pixels), visible N×K bool: the calibration split's predictions."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    ratios = np.asarray(errors, np.float64) / np.maximum(np.asarray(difficulty, np.float64), 1e-6)
    visible = np.asarray(visible, bool)
    pooled_scale = conformal_quantile(ratios[visible], alpha)
    count = visible.sum(0)
    scale, pooled = [], []
    for k in range(visible.shape[1]):
        own = count[k] >= MIN_PER_KEYPOINT
        scale.append(conformal_quantile(ratios[visible[:, k], k], alpha) if own else pooled_scale)
        pooled.append(not own)
    return Calibration(alpha=alpha, flip=flip, scale=scale, count=[int(c) for c in count], pooled=pooled)


def mode(flip: bool) -> str:
    return "flip" if flip else "plain"


def from_checkpoint(checkpoint: dict, flip: bool) -> Calibration | None:
    """The calibration a checkpoint carries for this flip mode, or None (also for one fitted on another difficulty
    formula: its scale does not apply to today's difficulty)."""
    stored = checkpoint.get(CHECKPOINT_KEY, {}).get(mode(flip))
    return Calibration(**stored) if stored and stored.get("difficulty") == DIFFICULTY else None


def store(checkpoint_path: str | Path, calibration: Calibration) -> None:
    """Add the calibration to the checkpoint file (beside one for the other flip mode), replacing it atomically."""
    path = Path(checkpoint_path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint.setdefault(CHECKPOINT_KEY, {})[mode(calibration.flip)] = calibration.to_dict()
    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)
