"""How wrong a model probably is on each frame, from the signals kp has (no labels needed).

Per frame, one number per signal, each a summary over the keypoints:
  jump    the largest distance between a confident point and its track's running median over JUMP_WINDOW frames
          (kp.trajectories.median): a point that leaves its track for a frame or three. This is the temporal signal
          (lightning-pose's temporal loss measures the same, frame to frame). A median, not the Kalman
          smoother: a median of 7 never follows a run of up to 3 wrong frames, while the Kalman smoother, its noise
          fitted by maximum likelihood, can follow an isolated wrong frame (tests/test_refine.py's 30-frame clip: a
          point 43 px off its track in one frame stayed 0.6 px from the smoothed one, no jump left to see)
  score   1 - the mean score: the model is unsure
  radius  the median calibrated uncertainty radius (only for a calibrated model)
  flip    the mean distance between the plain and the flip-tested prediction (--flip; the flip test averages the
          image's and its mirror's predictions, so this is half their disagreement)
  spread  the mean distance of the runs' predictions from their mean (several runs: an ensemble)
  pose_pca       the mean over the keypoints of each one's distance to its reprojection on the pose PCA of the run's
                 training labels (kp.unsupervised_losses; the checkpoint carries the fit): a pose unlike any labelled
                 one, such as a part on the wrong limb (source pixels; several runs: the mean of each run's own)
  multiview_pca  the same on the multi-view PCA, over the keypoints seen in several views (a mirror rig, several
                 cameras): views of a body part that do not agree on one point in 3-D
The last two are measured where every run's checkpoint carries the prior (kp train stores them for every run whose
training labels allow the fit); lightning-pose found them better than the confidence at flagging wrong
predictions, and `kp evaluate` measures how well they track the true error on labelled frames.

Signals come in different units (pixels, scores), so each is turned into a robust z-score over all frames, (value -
median) / (1.4826 × MAD), and a frame's outlier score is its largest z: the frame is as suspicious as its worst signal,
and that signal is the reason it is given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from kp.defaults import SCORE_THRESHOLD
from kp.trajectories import Tracks, median
from kp.trajectories.tracks import Layout

SIGNALS = ("jump", "score", "radius", "flip", "spread", "pose_pca", "multiview_pca")
JUMP_WINDOW = 7  # frames


@dataclass
class FramePredictions:
    """One video's (or image set's) predictions by one or more runs, N frames × K keypoints."""

    frames: np.ndarray  # N frame numbers (time, for the smoother)
    keypoints: np.ndarray  # R×N×K×2 pixels, one slice per run
    scores: np.ndarray  # R×N×K
    radius: np.ndarray  # R×N×K pixels, NaN without a calibration
    flipped: np.ndarray | None = None  # R×N×K×2: the mirrored predictions (--flip)
    # pose prior name -> R×N×K errors, pixels (Predictor.pose_prior_errors; NaN where the prior does not measure it)
    priors: dict[str, np.ndarray] = field(default_factory=dict)


def signals(
    predictions: FramePredictions, threshold: float = SCORE_THRESHOLD, temporal: bool = True
) -> dict[str, np.ndarray]:
    """Each available signal's N values (module docstring); `temporal` False for unordered images (no jump)."""
    mean_xy = predictions.keypoints.mean(axis=0)
    mean_score = predictions.scores.mean(axis=0)
    radius = predictions.radius.mean(axis=0)
    found = {"score": 1 - mean_score.mean(axis=1)}
    if temporal and len(predictions.frames) > 2:
        found["jump"] = _jump(predictions.frames, mean_xy, mean_score, radius, threshold)
    if np.isfinite(radius).any():
        with warnings.catch_warnings():  # a frame with no radius at all is a NaN median, counted as 0
            warnings.simplefilter("ignore", RuntimeWarning)
            found["radius"] = np.nan_to_num(np.nanmedian(radius, axis=1))
    if predictions.flipped is not None:
        found["flip"] = _distance(predictions.keypoints, predictions.flipped).mean(axis=(0, 2))
    if len(predictions.keypoints) > 1:
        found["spread"] = _distance(predictions.keypoints, mean_xy[None]).mean(axis=(0, 2))
    for name, errors in predictions.priors.items():
        found[name] = np.nanmean(errors.mean(axis=0), axis=1)  # a keypoint the prior measures in one run, in all
    return found


def outlier_scores(found: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """(N outlier scores: each frame's largest robust z over the signals, N reasons: that signal and its value)."""
    names = [name for name in SIGNALS if name in found]
    z = np.stack([robust_z(found[name]) for name in names])
    worst = z.argmax(axis=0)
    reasons = [_reason(names[w], found[names[w]][i]) for i, w in enumerate(worst)]
    return z.max(axis=0), reasons


def _reason(signal: str, value: float) -> str:
    return f"score {1 - value:.2f}" if signal == "score" else f"{signal} {value:.1f} px"


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 × median absolute deviation); the standard deviation where the MAD is 0 (most
    frames equal), and 0 for a constant signal."""
    centred = values - np.median(values)
    scale = 1.4826 * np.median(np.abs(centred)) or centred.std()
    return centred / scale if scale > 0 else np.zeros_like(values)


def _jump(frames: np.ndarray, xy: np.ndarray, score: np.ndarray, radius: np.ndarray, threshold: float) -> np.ndarray:
    """Per frame, the largest distance of a confident point from its track's running median."""
    n, k = score.shape
    layout = Layout("kp", [], [], x=list(range(k)), y=list(range(k)), score=[None] * k, radius=[None] * k)
    tracks = Tracks(frames, [str(i) for i in range(k)], xy, score, radius, np.zeros(n, dtype=object), layout)
    smoothed = median(tracks, window=JUMP_WINDOW, threshold=threshold)
    distance = np.linalg.norm(xy - smoothed, axis=-1)
    return np.nan_to_num(np.where(score >= threshold, distance, 0.0)).max(axis=1)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)
