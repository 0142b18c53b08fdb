"""Reading images and label files the same way in every loader, and reporting bad input the same way.

Bad-input policy (every loader follows it):
  - the source as a whole is unusable or disagrees with the config (label file or data folder missing, a required
    column missing, a keypoint count that differs from the config, a split left empty): `DataError` at start;
  - one sample is bad (a row with the wrong number of columns, a non-numeric or infinite coordinate, a missing image
    file): skipped at start, and every skip is counted and logged as a warning naming the file, line and problem
    (`SkipLog`);
  - an image file that exists but cannot be decoded is only found when it is loaded: `DataError` then, naming it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np


class DataError(ValueError):
    """Bad input, with the file (and line) it came from in the message."""


def where(path: str | Path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


class SkipLog:
    """Collects skipped samples and logs them once, counted, so that nothing is dropped silently."""

    shown = 10  # skips listed one by one in the log; the rest are only counted

    def __init__(self, source: str):
        self.source = source
        self.reasons: list[str] = []

    def skip(self, reason: str) -> None:
        self.reasons.append(reason)

    def __len__(self) -> int:
        return len(self.reasons)

    def report(self, logger: logging.Logger) -> None:
        if not self.reasons:
            return
        listed = "\n  ".join(self.reasons[: self.shown])
        more = f"\n  ... and {len(self.reasons) - self.shown} more" if len(self.reasons) > self.shown else ""
        logger.warning("%s: skipped %d bad sample(s):\n  %s%s", self.source, len(self.reasons), listed, more)


def parse_number(text: str, at: str, what: str = "coordinate") -> float:
    """A finite float, or DataError naming where the text came from."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{at}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{at}: {what} {text!r} is not finite")
    return value


def _truncated(data: bytes) -> bool:
    """cv2 decodes a cut-off JPEG or PNG without complaint (grey below the cut): check the end markers."""
    if data[:2] == b"\xff\xd8":  # JPEG: the last scan (SOS marker) must be followed by the end-of-image marker;
        # scan data never holds these byte pairs (0xFF is stuffed), and trailers after EOI do no harm
        return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data
    return False


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """Decode an image by its content, whatever its extension says (PNG bytes under a .jpg name are fine).

    Returns uint8 RGB H×W×3, or H×W×1 when grey=True; an alpha channel is dropped.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error.strerror or error})") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None or _truncated(data):
        raise DataError(f"{path}: corrupt or unsupported image ({len(data)} bytes)")
    if image.dtype == np.uint16:  # 16-bit PNG or TIFF
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if grey:
        return image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
