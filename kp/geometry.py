"""2×3 affine maps between pixel frames (x = column, y = row, pixel centres at integers), as samples carry them
(`affine`: source image -> network input) and as prediction inverts them; and the crops and letterboxes that make
them, shared by the loaders (kp.data) and prediction's preprocessing (kp.inference)."""

from __future__ import annotations

import cv2
import numpy as np

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The affine that applies `first`, then `second`."""
    combined = second[:, :2] @ first
    combined[:, 2] += second[:, 2]
    return combined


def invert(affine: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(affine[:, :2])
    return np.c_[linear, -linear @ affine[:, 2]]


def apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (..., 2) mapped by affine (2×3)."""
    return points @ affine[:, :2].T + affine[:, 2]


def scale(affine: np.ndarray) -> float:
    """How much the affine enlarges lengths (the square root of its area factor)."""
    return float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))


def from_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The affine that maps three (or more, least squares) source points onto target points."""
    design = np.c_[source, np.ones(len(source))]
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return solution.T


def crop_and_resize(
    image: np.ndarray, keypoints: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut box = (x0, y0, w, h) in whole pixels out of `image` (zeros where it leaves the image) and resize it to
    size = (width, height); keypoints (x = column, y = row, pixel centres at integers) move with it. Returns the
    image, the keypoints and the 2×3 affine from `image` pixels to the result's."""
    x0, y0, w, h = box
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + w - width, y0 + h - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    crop = image[y0 + pad : y0 + pad + h, x0 + pad : x0 + pad + w]
    out_w, out_h = size
    shrinking = out_w < w or out_h < h
    resized = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    # cv2.resize maps pixel edges onto pixel edges: a centre x goes to (x - x0 + 0.5) * scale - 0.5.
    sx, sy = out_w / w, out_h / h
    affine = np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])
    return resized, apply(affine, np.asarray(keypoints, np.float64)).astype(np.float32), affine


def letterbox(
    image: np.ndarray, keypoints: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale the whole image to fit size = (width, height), keeping its aspect ratio, centred and padded with black
    (crop_and_resize of the box of the output's aspect ratio that just holds the image)."""
    height, width = image.shape[:2]
    scale = min(size[0] / width, size[1] / height)
    box_w, box_h = round(size[0] / scale), round(size[1] / scale)
    return crop_and_resize(image, keypoints, ((width - box_w) // 2, (height - box_h) // 2, box_w, box_h), size)
