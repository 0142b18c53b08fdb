"""Reading images and label files the same way in every loader, and reporting bad input the same way.

Bad-input policy (every loader follows it):
  - the source as a whole is unusable or disagrees with the config (label file or data folder missing, a required
    column missing, a keypoint count that differs from the config, a split left empty): `DataError` at start;
  - one sample is bad (a row with the wrong number of columns, a non-numeric or infinite coordinate, a missing image
    file): skipped at start, and every skip is counted and logged as a warning naming the file, line and problem
    (`SkipLog`);
  - an image file that exists but cannot be decoded is only found when it is loaded: `DataError` then, naming it;
  - nothing doubtful passes silently: label files are read as UTF-8 (with or without BOM) or refused naming the
    encoding to convert from, or what the file is where it is no text at all (`read_text`, `read_csv`); a stray
    quote that swallows rows is an error at its line; coordinates that look normalised or scaled are an error naming
    the likely scale (`check_units`); a sample with a point far outside its image is skipped, a point just beyond its
    edge left out of the labels, both counted (`check_points`); an image name the file system refuses is a missing
    image (`check_image_file`); images above the pixel limit (`max_pixels`, data.max_image_megapixels) are refused
    from their header, before decoding.

The rest of what loaders share has its own module: the splits (kp.data.splits), flip pairs and skeletons by name
(kp.data.keypoint_pairs), crops and letterboxes (kp.geometry) and the file formats (kp.formats).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from kp.errors import DataError

# Images larger than this are refused before they are decoded (a 100 000 × 100 000 PNG would take 30 GB); a
# datamodule's max_image_megapixels gives its loaders another.
MAX_PIXELS = 100_000_000
# Label files with fields longer than the csv module's default 128 KiB (Kaggle's 9216-pixel images come close) read.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def where(path: str | Path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def split_location(message: str) -> tuple[str, str, str]:
    """`file:line: reason` (or `file: reason`) -> (file, line, reason), as data_issues.csv lists a skip."""
    match = re.match(r"^(.*?)(?::(\d+))?: (.*)$", message, re.S)
    return (match.group(1), match.group(2) or "", match.group(3)) if match else ("", "", message)


class SkipLog:
    """Collects skipped samples and logs them once, counted, so that nothing is dropped silently. Loaders keep the
    reasons (`dataset.issues`); a run writes them to data_issues.csv."""

    shown = 10  # skips listed one by one in the log; the rest are only counted

    def __init__(self, source: str):
        self.source = source
        self.reasons: list[str] = []

    def skip(self, reason: str) -> None:
        self.reasons.append(reason if ": " in reason else f"{self.source}: {reason}")

    def __len__(self) -> int:
        return len(self.reasons)

    def report(self, logger: logging.Logger) -> None:
        if not self.reasons:
            return
        listed = "\n  ".join(self.reasons[: self.shown])
        more = f"\n  ... and {len(self.reasons) - self.shown} more" if len(self.reasons) > self.shown else ""
        logger.warning(
            "%s: left out %d bad sample(s) or point(s):\n  %s%s", self.source, len(self.reasons), listed, more
        )


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


def read_image(path: str | Path, grey: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image by its content, whatever its extension says (PNG bytes under a .jpg name are fine); one
    above max_pixels is refused from its header.

    Returns uint8 RGB H×W×3, or H×W×1 when grey=True; an alpha channel is dropped.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error.strerror or error})") from None
    _header_size(path, io.BytesIO(data), max_pixels)
    # A cut-off file is refused before OpenCV sees it: its decoder would print its own warning above kp's message.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data and not _truncated(data) else None
    if image is None:
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


def _header_size(path: str | Path, source, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) from an image's header, without decoding it; a DataError above max_pixels, None where PIL does
    not know the format (cv2 decides then). PIL's own decompression-bomb guard stays on: its warning is kp's check
    here, its refusal (at twice PIL.Image.MAX_IMAGE_PIXELS) a DataError as well."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as header:
                width, height = header.size
    except Image.DecompressionBombError as error:  # PIL's message holds the pixel count, not the sides
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = int(found.group(1)) if found else 0
        limit = max_pixels if pixels > max_pixels else 2 * Image.MAX_IMAGE_PIXELS
        raise DataError(
            f"{path}: image is {pixels / 1e6:g} megapixels, above the limit of {limit / 1e6:g} megapixels"
            + (": shrink it, or raise data.max_image_megapixels" if limit == max_pixels else " (PIL's): shrink it")
        ) from None
    except Exception:  # noqa: BLE001 - not an image PIL knows: cv2 decides
        return None
    _check_pixels(path, width, height, max_pixels)
    return width, height


def _check_pixels(path: str | Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DataError(
            f"{path}: image is {width}×{height} pixels, above the limit of {max_pixels / 1e6:g} "
            "megapixels: shrink it, or raise data.max_image_megapixels"
        )


# What a file is where it is no text at all, by its first bytes: an image, a video or an archive given for a CSV.
_BINARY = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"II*\0": "a TIFF image",
    b"MM\0*": "a TIFF image",
    b"RIFF": "a RIFF file (AVI video or WAV)",
    b"\x1aE\xdf\xa3": "a Matroska video",
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx?)",
    b"\x89HDF": "an HDF5 file",
    b"%PDF": "a PDF",
    b"\x1f\x8b": "a gzip archive",
}


def read_text(path: str | Path) -> str:
    """A label file's text: UTF-8 with or without a byte-order mark; any other encoding is a DataError that names
    the encoding to convert from, and a file that is no text (an image, a video) one that says what it is."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    kind = next((kind for magic, kind in _BINARY.items() if data.startswith(magic)), None)
    if kind is None and data[4:8] == b"ftyp":
        kind = "an MP4 or MOV video"
    if kind:
        raise DataError(f"{path}: {kind}, not a text file: give the CSV (or YAML) file itself")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: UTF-16 text; kp reads UTF-8: convert it, e.g. iconv -f UTF-16 -t UTF-8 {path}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[error.start]:02x}); it looks like Windows-1252 / "
            f"Latin-1: convert it, e.g. iconv -f CP1252 -t UTF-8 {path} > utf8.csv"
        ) from None


def read_csv(path: str | Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty row of a CSV file (read as read_text does). A quote that opens a
    field and runs over line ends (a stray `"`) would swallow the rows after it: a DataError at its line."""
    text = read_text(path)
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise DataError(f"{path}:{line}: a NUL byte: the file is damaged or not a text CSV; re-export it")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, line = [], 1
    try:
        for fields in reader:
            if any("\n" in field or "\r" in field for field in fields):
                raise DataError(
                    f'{path}:{line}: a quote (") opens a field that runs on to line {reader.line_num}, '
                    f"swallowing {reader.line_num - line} line(s): remove the stray quote or close it"
                )
            if fields:
                rows.append((line, fields))
            line = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({error})") from None
    return rows


def check_units(points: np.ndarray, sizes: np.ndarray, path: str | Path, places: Sequence[str] | None = None) -> None:
    """Coordinates in another unit read as pixels are a silent wrong result: a DataError that names the likely
    scale. points N×K×2 in pixels (NaN: unlabelled), sizes N×2 (width, height) of their images; places (N, `file` or
    `file:line` per sample) name the first sample in the message, else `path` does."""
    points, sizes = np.asarray(points, np.float64), np.asarray(sizes, np.float64)[:, None, :]
    labelled = np.isfinite(points).all(axis=-1)
    if labelled.sum() < 2:
        return
    values = points[labelled]
    extent = np.broadcast_to(sizes, points.shape)[labelled]

    def at(samples: np.ndarray) -> str:  # the first of these samples, with how many there are
        if places is None:
            return str(path)
        first = np.flatnonzero(samples)[0]
        return f"{places[first]}" + (f" (and {samples.sum() - 1} more)" if samples.sum() > 1 else "")

    if values.min() >= 0 and values.max() <= 1 and extent.min() >= 8:
        raise DataError(
            f"{at(labelled.any(axis=1))}: every coordinate lies within [0, 1] on images of {int(extent.min())} "
            "pixels or more: they look normalised to the image size; kp reads pixels (x = column, y = row): "
            "multiply them by the image width and height"
        )
    outside = far_outside(values, extent)
    if outside.mean() > 0.5:
        scale = np.median(np.abs(values[outside]) / extent[outside]) * 2
        far = (far_outside(points, np.broadcast_to(sizes, points.shape)) & labelled).any(axis=1)
        raise DataError(
            f"{at(far)}: {outside.sum()} of {len(values)} labelled points lie far outside their images "
            f"(about {scale:.3g}× the image size): the coordinates look scaled (e.g. ×100 or in another "
            "image's pixels); kp reads pixels of the image itself"
        )


def check_points(
    points: np.ndarray, sizes: np.ndarray, places: Sequence[str], names: Sequence[str], path: str | Path, skips: SkipLog
) -> tuple[np.ndarray, np.ndarray]:
    """The checks of labelled points against their images, the same in every loader: coordinates in another unit
    are a DataError (check_units); a sample with a point far outside its image is skipped; a point just beyond the
    image's edge (a -1 written for "missing", a slip) is left out, unlabelled. Every skip and every point left out is
    counted in `skips`, at its sample's place.

    points N×K×2 pixels (NaN: unlabelled), sizes N×2 (width, height), places N (`file:line`, `file: annotation id`),
    names K. Returns which samples are kept (N bool) and which points stay labelled (N×K bool)."""
    points = np.asarray(points, np.float64).reshape(len(places), len(names), 2)
    sizes = np.asarray(sizes, np.float64).reshape(len(places), 2)
    check_units(points, sizes, path, places)
    labelled = np.isfinite(points).all(axis=2)
    far = (far_outside(points, sizes[:, None]) & labelled).any(axis=1)
    # The image spans [-0.5, W - 0.5] × [-0.5, H - 0.5] (pixel centres at integers), as KeypointDataset marks them.
    outside = labelled & ~far[:, None] & ((points < -0.5) | (points > sizes[:, None] - 0.5)).any(axis=2)
    for i in range(len(places)):
        width, height = (int(v) for v in sizes[i])
        if far[i]:
            skips.skip(f"{places[i]}: a keypoint lies far outside the {width}×{height} image")
        elif outside[i].any():
            listed = ", ".join(
                f"{names[k]} at ({points[i, k, 0]:g}, {points[i, k, 1]:g})" for k in np.flatnonzero(outside[i])
            )
            skips.skip(f"{places[i]}: {listed} outside the {width}×{height} image: left out (unlabelled)")
    return ~far, labelled & ~outside


def far_outside(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Which points (…×2, pixels) lie more than half an image beyond their image's edges (…×2: width, height): never
    a labelling slip to keep, and such points would size a crop to a huge allocation."""
    points, sizes = np.asarray(points, np.float64), np.asarray(sizes, np.float64)
    return ((points < -0.5 * sizes) | (points > 1.5 * sizes)).any(axis=-1)


def drop_repeats(
    keys: Sequence[str],
    labels: Sequence[np.ndarray],
    places: Sequence[str],
    skips: SkipLog,
    what: str | None = None,
) -> list[int]:
    """Indices to keep where one image (key: its name, or the digest of its bytes) is listed more than once: the same
    labels again are skipped and counted; different labels are a DataError that lists both rows (which one is right,
    only the user knows). what: how the messages call the image (default: its key)."""
    first: dict[str, int] = {}
    kept = []
    for i, key in enumerate(keys):
        j = first.setdefault(key, i)
        if j == i:
            kept.append(i)
        elif np.array_equal(np.asarray(labels[i]), np.asarray(labels[j]), equal_nan=True):
            skips.skip(f"{places[i]}: {what or key} repeats {places[j]} (same labels)")
        else:
            raise DataError(
                f"{places[i]}: {what or key} is labelled again with other keypoints than at {places[j]}: keep one "
                "of the two"
            )
    return kept


def image_size(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; DataError where it is no image or
    one above max_pixels."""
    try:
        with open(path, "rb") as file:
            size = _header_size(path, file, max_pixels)
    except OSError as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    if size is None:
        raise DataError(f"{path}: not a readable image (no image format PIL knows)")
    return size


def check_image_file(image: Path, at: str) -> None:
    """A label row's image must be a file that can be opened: a DataError naming the row otherwise (a skip)."""
    try:
        found = image.is_file()
    except OSError as error:  # a name the file system refuses (longer than 255 bytes, ...)
        raise DataError(f"{at}: image {image} cannot be opened ({error.strerror or error})") from None
    if not found:
        raise DataError(f"{at}: image {image} is missing")


_digests: dict[tuple, str] = {}  # (path, size, mtime) -> hash: the splits and repeated runs in a process read once


def digest(source: Path | bytes) -> str:
    """A hash of an image file's bytes (or of pixels): the same image under two names, or labelled twice."""
    if not isinstance(source, Path):
        return hashlib.blake2b(source, digest_size=16).hexdigest()
    stat = source.stat()
    key = (source, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = hashlib.blake2b(source.read_bytes(), digest_size=16).hexdigest()
    return _digests[key]
