"""Which frames to label: the worst by the outlier score, made varied.

The frames of one bad second are near-identical and score alike; taking the top N would spend every label on them.
As DeepLabCut's extract_outlier_frames does, the outliers (score at least OUTLIER: robust z-scores, kp.refine.score),
or the CANDIDATES × N worst frames where there are fewer outliers, are clustered into N groups by k-means on a small
embedding of each frame (its thumbnail; or the pose), and each group gives its worst frame. k-means is scipy's
kmeans2 (scikit-learn is not a kp dependency), seeded, with k-means++ starts.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from scipy.cluster.vq import kmeans2

OUTLIER = 3.0  # a frame whose worst signal lies 3 robust standard deviations out is an outlier
CANDIDATES = 4  # at least this many frames per pick go into the clustering
THUMBNAIL = 16  # px: the embedding is the frame shrunk to THUMBNAIL × THUMBNAIL grey levels


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A frame's embedding: its grey levels at THUMBNAIL × THUMBNAIL, zero mean and unit norm (lighting drops out)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey.reshape(grey.shape[:2]), (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
    vector = small.astype(np.float64).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) or 1.0)


def pick(scores: np.ndarray, embedding: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of `count` frames (fewer where there are fewer), worst first: one per k-means group of the outliers
    (module docstring). scores: N, higher is worse; embedding: N×D."""
    if count < 1:
        raise ValueError(f"the number of frames to pick must be at least 1, got {count}")
    order = np.argsort(-scores, kind="stable")
    candidates = order[: max(CANDIDATES * count, int((scores >= OUTLIER).sum()))]
    if len(candidates) <= count:
        return candidates
    points = np.asarray(embedding, np.float64)[candidates]
    with warnings.catch_warnings():  # identical frames can leave a group empty: handled below
        warnings.simplefilter("ignore", UserWarning)
        _, group = kmeans2(points, count, minit="++", seed=seed)
    # candidates are sorted worst first, so a group's first member is its worst frame
    firsts = [candidates[np.flatnonzero(group == g)[0]] for g in np.unique(group)]
    chosen = list(firsts)
    if len(chosen) < count:  # k-means left a group empty: fill with the worst frames not yet chosen
        chosen += [i for i in candidates if i not in set(chosen)][: count - len(chosen)]
    return np.array(sorted(chosen, key=lambda i: -scores[i]))
