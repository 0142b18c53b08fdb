"""Frames of a video, the one way kp reads them (kp predict, kp refine, and training clips of unlabelled video).

Frames are read in order with OpenCV, never by seeking to a frame number: seeking in compressed video lands on the
nearest key frame in some containers and codecs, and the frame numbers then drift from the frames. A frame that cannot
be decoded (or that the container promises and the stream does not hold) comes back as None, in its place: the
caller counts it and lists it (kp predict's skipped.csv, kp refine's note), never drops it silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from kp.errors import InputError


def video_info(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frame count, frames per second, (width, height)) as the container states them."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: OpenCV cannot open this video")
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS) or 30.0, size
    finally:
        capture.release()


def read_frames(path: Path, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(frame number, RGB image H×W×3 uint8, or None where it cannot be decoded) for each wanted frame (ascending),
    in one pass: the frames between are grabbed, not decoded."""
    capture = cv2.VideoCapture(str(path))
    try:
        position = 0
        for target in wanted:
            while position < target and capture.grab():
                position += 1
            ok, image = capture.read()
            position += 1
            yield target, cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if ok and image is not None else None
    finally:
        capture.release()


def undecodable(path: Path, frame: int) -> str:
    """The reason a bad frame is listed with."""
    return f"{path}: frame {frame} cannot be decoded"
