"""Faces in photos for face-landmark models (`kp predict --detect faces`): OpenCV's bundled Haar cascade (ships with
opencv-python, nothing to download), and the square crop that gives a face the framing its model was trained on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from kp.data.facial import default_cache_dir
from kp.data.io import read_image

log = logging.getLogger(__name__)
CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


class FaceDetector:
    """Face boxes (x, y, w, h) in an RGB or grey uint8 image, left to right. The cascade is loaded on first use, so
    that each DataLoader worker loads its own (OpenCV classifiers do not pickle)."""

    def __init__(self, min_size: int = 24, neighbours: int = 5):
        self.min_size, self.neighbours = min_size, neighbours
        self._cascade = None

    def __call__(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        if self._cascade is None:
            self._cascade = cv2.CascadeClassifier(str(CASCADE))
            if self._cascade.empty():
                raise RuntimeError(f"{CASCADE}: OpenCV's face cascade is missing (opencv-python-headless<5 ships it)")
        grey = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        if grey.ndim == 3:
            grey = cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY)
        boxes = self._cascade.detectMultiScale(
            cv2.equalizeHist(grey),
            scaleFactor=1.1,
            minNeighbors=self.neighbours,
            minSize=(self.min_size, self.min_size),
        )
        return sorted((tuple(int(v) for v in box) for box in boxes), key=lambda box: box[0])

    def in_files(self, files: Sequence[Path], cache_dir: Path | None = None) -> list[list[tuple[int, int, int, int]]]:
        """The face boxes in each image file. Detection takes tens of seconds for a few thousand photos, and gives the
        same boxes at every start: they are kept in cache_dir/face_boxes.json (default ~/.cache/kp), keyed by each
        file's content (BLAKE2) and the detector's settings, so an edited photo is detected again."""
        path = Path(cache_dir or default_cache_dir()) / "face_boxes.json"
        try:
            known = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError) as error:
            log.warning("%s: unreadable (%s); detecting the faces again", path, error)
            known = {}
        settings = f"haar:{self.min_size}:{self.neighbours}"
        keys = [f"{hashlib.blake2b(Path(f).read_bytes(), digest_size=16).hexdigest()}:{settings}" for f in files]
        missing = [(key, f) for key, f in zip(keys, files) if key not in known]
        for key, file in missing:
            known[key] = self(read_image(file))
        if missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(known))
            os.replace(partial, path)  # atomic: runs started together never read half a file
        return [[tuple(box) for box in known[key]] for key in keys]


def face_crop_box(box: tuple[int, int, int, int], side: float, shift: float) -> tuple[int, int, int, int]:
    """The square (x0, y0, s, s) of `side` face-box widths around a face box, its centre `shift` box widths below the
    box's: the framing KeypointDataset.face_crop describes."""
    x, y, w, h = box
    size = max(1, round(side * w))
    centre_x, centre_y = x + w / 2, y + h / 2 + shift * w
    return round(centre_x - size / 2), round(centre_y - size / 2), size, size
