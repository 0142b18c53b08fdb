"""Keypoint trajectories over video frames: read a prediction CSV as tracks, smooth them, write them back."""

from kp.trajectories.smooth import KalmanFit, Report, kalman, median, savgol, smooth
from kp.trajectories.tracks import Tracks, read_tracks, write_tracks

__all__ = [
    "KalmanFit",
    "Report",
    "Tracks",
    "kalman",
    "median",
    "read_tracks",
    "savgol",
    "smooth",
    "write_tracks",
]
