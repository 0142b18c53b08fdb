"""Reading images and label files the same way in every loader, and reporting bad input the same way.

Bad-input policy (every loader follows it):
  - the source as a whole is unusable or disagrees with the config (label file or data folder missing, a required
    column missing, a keypoint count that differs from the config, a split left empty): `DataError` at start;
  - one sample is bad (a row with the wrong number of columns, a non-numeric or infinite coordinate, a missing image
    file): skipped at start, and every skip is counted and logged as a warning naming the file, line and problem
    (`SkipLog`);
  - an image file that exists but cannot be decoded is only found when it is loaded: `DataError` then, naming it;
  - nothing doubtful passes silently: label files are read as UTF-8 (with or without BOM) or refused naming the
    encoding to convert from (`read_text`, `read_csv`); a stray quote that swallows rows is an error at its line;
    coordinates that look normalised or scaled are an error naming the likely scale (`check_units`); a sample with a
    point far outside its image is skipped, a point just beyond its edge left out of the labels, both counted
    (`check_points`); an image name the file system refuses is a missing image (`check_image_file`); images above
    `MAX_IMAGE_PIXELS` are refused.

Below the reading helpers are the ones the loaders share for the rest: the split by groups (`split_groups`; groups of
look-alike images where a dataset has no ids, `similarity_groups`), the
crop to a working size (`crop_and_resize`) and flip pairs from keypoint names or from the config
(`flip_pairs_from_names`, `resolve_pairs`, and `mirror_note`, the run's one log line about them).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from kp.errors import DataError
from kp.geometry import apply

SPLITS = ("train", "val", "test")
# Images larger than this are refused before they are decoded (a 100 000 × 100 000 PNG would take 30 GB); the
# datamodule's max_image_megapixels sets it.
MAX_IMAGE_PIXELS = 100_000_000
# Label files with fields longer than the csv module's default 128 KiB (Kaggle's 9216-pixel images come close) read.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
Image.MAX_IMAGE_PIXELS = None  # PIL's own limit raises its own error: MAX_IMAGE_PIXELS above is the one kp applies


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


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """Decode an image by its content, whatever its extension says (PNG bytes under a .jpg name are fine).

    Returns uint8 RGB H×W×3, or H×W×1 when grey=True; an alpha channel is dropped.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error.strerror or error})") from None
    _check_size(path, data)
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


def _check_size(path: str | Path, data: bytes) -> None:
    """Refuse an image above MAX_IMAGE_PIXELS from its header, before decoding allocates it."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # noqa: BLE001 - not an image PIL knows: cv2 decides below
        return
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{path}: image is {width}×{height} pixels, above the limit of {MAX_IMAGE_PIXELS / 1e6:g} "
            "megapixels: shrink it, or raise data.max_image_megapixels"
        )


def read_text(path: str | Path) -> str:
    """A label file's text: UTF-8 with or without a byte-order mark; any other encoding is a DataError that names
    the encoding to convert from."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
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


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def split_groups(
    groups: Sequence[str],
    split: str,
    fractions: Mapping[str, float],
    seed: int,
    what: str,
    fractions_of: str = "groups",
) -> list[int]:
    """Indices (ascending) of the samples that fall into `split`, where groups[i] is sample i's group (video, image,
    person). Whole groups are shuffled with `seed` and handed out in that order, so near-duplicate frames of one group
    never straddle two splits. `what` names the data and its groups for the error messages (e.g. "cardpoints.csv by
    videoId"); a split left empty is a DataError.

    fractions_of says what `fractions` count:
      - "groups": of the groups; the first train share of the shuffled groups is train, then val, then test (a split
        whose share rounds to no group is empty);
      - "samples": of the samples; groups fill test, then val, until each holds its share of the samples (the last
        group may overshoot it), and the rest is train. Any split with a share above 0 gets a group while groups last,
        and the sizes follow the sample counts where groups differ much in size (people with 1 or 50 photos)."""
    check_split(split)
    if (
        set(fractions) != set(SPLITS)
        or any(fractions[s] < 0 for s in SPLITS)
        or not math.isclose(sum(fractions[s] for s in SPLITS), 1.0, abs_tol=1e-6)
    ):
        raise ValueError(f"fractions must give train, val and test, each >= 0 and summing to 1; got {dict(fractions)}")
    if fractions_of not in ("groups", "samples"):
        raise ValueError(f"fractions_of must be 'groups' or 'samples', got {fractions_of!r}")
    unique = sorted(set(groups))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    if fractions_of == "groups":
        ends = np.round(np.cumsum([fractions[s] for s in SPLITS]) * len(unique)).astype(int)
        k = SPLITS.index(split)
        chosen = set(order[(ends[k - 1] if k else 0) : ends[k]])
    else:
        size = Counter(groups)
        wanted = {s: fractions[s] * len(groups) for s in ("test", "val")}
        filled = {"test": 0, "val": 0}
        chosen = set()
        for group in order:
            goes_to = next((s for s in ("test", "val") if filled[s] < wanted[s]), "train")
            if goes_to != "train":
                filled[goes_to] += size[group]
            if goes_to == split:
                chosen.add(group)
    indices = [i for i, group in enumerate(groups) if group in chosen]
    if not indices:
        raise DataError(
            f"The {split} split of {what} is empty: {len(unique)} group(s) dealt out by fractions {dict(fractions)} "
            f"of the {fractions_of}. Add data or change the fractions (or split_by, where the dataset has it)."
        )
    return indices


# Difference hashes at most this many of 64 bits apart count as near-duplicates (the doctor's and split_by=similarity's
# rule): re-encoded, slightly shifted or brightened copies and frames a few milliseconds apart.
NEAR_BITS = 4


def difference_hash(image: np.ndarray) -> int:
    """64 bits: whether each pixel of a 9×8 grey thumbnail is brighter than its right neighbour (robust to
    re-encoding, resizing and small brightness changes). image: H×W, H×W×1 (grey) or H×W×3 (RGB)."""
    grey = (
        image if image.ndim == 2 else image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    )
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def similarity_groups(images: Iterable[np.ndarray], near_bits: int = NEAR_BITS) -> list[str]:
    """Per image, its group for split_groups where a dataset has no person or video ids (split_by=similarity): images
    whose difference hashes are at most near_bits apart share a group, and so, transitively, do their look-alikes."""
    hashes = np.array([difference_hash(image) for image in images], np.uint64)
    parent = np.arange(len(hashes))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in np.flatnonzero(np.bitwise_count(hashes[i + 1 :] ^ hashes[i]) <= near_bits) + i + 1:
            parent[root(j)] = root(i)
    return [f"look-alikes#{root(i)}" for i in range(len(hashes))]


def nested_subset(groups: Sequence[str], fraction: float, seed: int = 0) -> list[int]:
    """Indices (ascending) of about `fraction` of the samples, in whole groups (groups[i] is sample i's group). The
    groups are shuffled with `seed` whatever the fraction and taken in that order until the share is reached, so the
    subsets are nested: the 25 % one lies inside the 50 % one, and a learning curve compares like with like."""
    unique = sorted(set(groups))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    size, wanted, chosen, taken = Counter(groups), fraction * len(groups), set(), 0
    for group in order:
        if chosen and taken >= wanted - 1e-9:
            break
        chosen.add(group)
        taken += size[group]
    return [i for i, group in enumerate(groups) if group in chosen]


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


# A side marker: left/right in any case anywhere (left_eye, LeftHand, leftear); an upper-case L or R that no capital
# precedes and no lower-case letter follows (L_Eye, eyeL, forelegR1, LHip, paw1LH_top: left hind); or a lone l/r
# (l_eye, paw_r1). "Lip", "Rump" and "tailBase" carry none.
_SIDE = re.compile(r"(?i:left|right)|(?<![A-Z])[LR](?![a-z])|(?<![A-Za-z])[lr](?![A-Za-z])")


def _mirror_name(name: str) -> tuple[str, str] | None:
    """(side "l" or "r", the name in lower case with its side marker(s) blanked), or None where the name carries no
    side, or two that disagree (left_to_right)."""
    sides = {match.group(0)[0].lower() for match in _SIDE.finditer(name)}
    if len(sides) != 1:
        return None
    return sides.pop(), _SIDE.sub("\0", name).lower()


def guess_flip_pairs(names: Sequence[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Pairs (i, j) of names that differ only by their side marker, case aside (left_eye/Right_Eye, L_Eye/R_Eye,
    eyeL/eyeR); then, among the names still alone, by their side marker and digits, where that match is unique
    (paw1LH_top/paw4RH_top, lightning-pose's numbered paws). Also returns the names that carry a side and found no
    partner: mirroring would keep such a point's label on the wrong side."""
    sided = {i: side_and_rest for i, name in enumerate(names) if (side_and_rest := _mirror_name(name))}
    pairs: list[tuple[int, int]] = []
    for rest_of in (lambda rest: rest, lambda rest: re.sub(r"\d+", "", rest)):
        alone = [i for i in sided if all(i not in pair for pair in pairs)]
        by_rest: dict[tuple[str, str], list[int]] = {}
        for i in alone:
            side, rest = sided[i]
            by_rest.setdefault((side, rest_of(rest)), []).append(i)
        for (side, rest), left in by_rest.items():
            right = by_rest.get(("r", rest), [])
            if side == "l" and len(left) == 1 and len(right) == 1:
                pairs.append(tuple(sorted((left[0], right[0]))))
    paired = {i for pair in pairs for i in pair}
    return sorted(pairs), [names[i] for i in sided if i not in paired]


def flip_pairs_from_names(names: Sequence[str]) -> list[tuple[int, int]] | None:
    """The left/right pairs guessed from the names (guess_flip_pairs); None (unknown, see KeypointMeta.flip_pairs)
    where none was found or a name with a side has no partner."""
    pairs, alone = guess_flip_pairs(names)
    return pairs if pairs and not alone else None


def mirror_note(names: Sequence[str], pairs: Sequence[tuple[int, int]] | None) -> str:
    """The one log line a run gives about mirroring: which pairs it swaps (and whether the names gave them), that
    none are needed, or that they are unknown, so mirror augmentation and flip test are off, and how to declare them."""
    declare = (
        "declare them with data.dataset.flip_pairs=[[left_x, right_x], ...], or data.dataset.flip_pairs=[] "
        "where no keypoint has a mirror partner"
    )
    if pairs is None:
        _, alone = guess_flip_pairs(names)
        why = f"no partner for {', '.join(alone)}" if alone else "none found among the names"
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        return (
            f"mirror augmentation and flip test are OFF: the left/right pairs of the keypoints ({shown}) are "
            f"unknown ({why}); {declare}"
        )
    if not pairs:
        return "flip pairs: none needed (flip_pairs: []): mirroring keeps every keypoint's label"
    source = "guessed from the names" if list(pairs) == flip_pairs_from_names(names) else "as listed"
    swapped = ", ".join(f"{names[i]}<->{names[j]}" for i, j in pairs)
    return (
        f"flip pairs {source}: {swapped} (mirror augmentation and flip test swap them; data.dataset.flip_pairs sets "
        "them)"
    )


def resolve_pairs(pairs: Sequence[Sequence], names: Sequence[str], what: str) -> list[tuple[int, int]]:
    """Config pairs given by keypoint name (or by 0-based index) -> index pairs."""
    index = {name: i for i, name in enumerate(names)}
    resolved = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{what}: {list(pair)} is not a pair")
        ids = [p if isinstance(p, int) else index.get(p) for p in pair]
        if any(i is None or not 0 <= i < len(names) for i in ids):
            raise ValueError(f"{what}: {list(pair)} names an unknown keypoint; keypoints are {list(names)}")
        resolved.append(tuple(ids))
    return resolved


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


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; DataError where it is no image."""
    try:
        with Image.open(path) as header:
            width, height = header.size
    except OSError as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{path}: image is {width}×{height} pixels, above the limit of {MAX_IMAGE_PIXELS / 1e6:g} "
            "megapixels: shrink it, or raise data.max_image_megapixels"
        )
    return width, height


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
