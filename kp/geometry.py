"""2×3 affine maps between pixel frames (x = column, y = row, pixel centres at integers), as samples carry them
(`affine`: source image -> network input) and as prediction inverts them."""

from __future__ import annotations

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
