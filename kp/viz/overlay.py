"""Predictions drawn over the original image (kp predict's overlay PNGs and annotated videos): the skeleton, each
keypoint coloured by its score (red 0 -> green 1), faded below the threshold, its calibrated uncertainty circle, and
face boxes where there are some."""

from __future__ import annotations

import cv2
import numpy as np

from kp.data.base import KeypointMeta


def score_colour(score: float) -> tuple[int, int, int]:
    """RGB from red (0) through yellow to green (1)."""
    score = float(np.clip(score, 0.0, 1.0))
    return (int(255 * min(1.0, 2 - 2 * score)), int(255 * min(1.0, 2 * score)), 0)


def draw(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    meta: KeypointMeta,
    threshold: float,
    boxes: list | None = None,
    radius: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of `image` (H×W×3 RGB or H×W×1 grey uint8) with every instance's keypoints (N×K×2, N×K scores) and,
    where given and finite, their uncertainty radii (N×K, pixels) as thin circles. A point that is NaN (a smoothed
    track before its first or after its last confident frame) is not drawn, nor are its skeleton lines."""
    canvas = (
        image
        if image.ndim == 3 and image.shape[2] == 3
        else cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    )
    solid, faint = canvas.copy(), canvas.copy()
    scale = max(1, round(max(canvas.shape[:2]) / 300))
    for index, (points, point_scores) in enumerate(zip(keypoints, scores)):
        box = boxes[index] if boxes else None
        if box is not None:
            x, y, w, h = box
            cv2.rectangle(solid, (x, y), (x + w, y + h), (80, 160, 255), scale)
        drawable = np.isfinite(points).all(axis=1)
        for i, j in meta.skeleton:
            if not (drawable[i] and drawable[j]):
                continue
            layer = solid if min(point_scores[i], point_scores[j]) >= threshold else faint
            cv2.line(layer, _pixel(points[i]), _pixel(points[j]), (255, 255, 255), scale, cv2.LINE_AA)
        for k, (point, score) in enumerate(zip(points, point_scores)):
            if not drawable[k]:
                continue
            layer = solid if score >= threshold else faint
            if radius is not None and np.isfinite(radius[index][k]):
                cv2.circle(
                    layer, _pixel(point), max(1, int(round(radius[index][k]))), score_colour(score), 1, cv2.LINE_AA
                )
            cv2.circle(layer, _pixel(point), 2 * scale + 2, (0, 0, 0), -1, cv2.LINE_AA)  # a dark rim on any background
            cv2.circle(layer, _pixel(point), 2 * scale + 1, score_colour(score), -1, cv2.LINE_AA)
    # Below the threshold: drawn at 35 % opacity over the picture.
    faded = cv2.addWeighted(faint, 0.35, canvas, 0.65, 0)
    drawn_faint = np.any(faint != canvas, axis=-1)
    drawn_solid = np.any(solid != canvas, axis=-1)
    out = canvas.copy()
    out[drawn_faint] = faded[drawn_faint]
    out[drawn_solid] = solid[drawn_solid]
    return out


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return int(round(point[0])), int(round(point[1]))
