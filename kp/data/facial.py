"""Kaggle "Facial Keypoints Detection": 96×96 grey faces with 15 keypoints, many rows missing most of them.

Files (the Kaggle layout, in `root`):
  training.csv       30 columns `<keypoint>_x, <keypoint>_y` in pixels (empty: missing), then `Image`: 9216
                     space-separated grey values of the 96×96 image, row-major
  test.csv           `ImageId,Image` (no labels)
  IdLookupTable.csv  `RowId,ImageId,FeatureName,Location`: the values a submission must give (`RowId,Location`)
"Left" is the person's left, which appears on the image's right.

subset=complete keeps the rows with all 15 keypoints (the original's 2140-image setting); subset=all keeps every row,
missing keypoints invisible, so they are masked out of the loss. The split is drawn over all rows before the subset is
applied, so both settings hold out the same faces. The layout has no person ids: split_by=similarity (the default)
keeps look-alike images (kp.data.splits.similarity_groups) on one side of the split; split_by=row deals rows.

Parsing 9216 numbers per row takes seconds, so training.csv is parsed once into an .npz file in `cache_dir`, named by
the hash of the CSV's content (an edited CSV is parsed again; a copy elsewhere reuses the cache).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import MAX_PIXELS, SkipLog, check_points, digest, drop_repeats, parse_number, read_csv, where
from kp.data.splits import check_split, similarity_groups, split_groups
from kp.errors import DataError

log = logging.getLogger(__name__)

NAMES = [
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
]
FLIP_PAIRS = [(0, 1), (2, 4), (3, 5), (6, 8), (7, 9), (11, 12)]
SKELETON = [(2, 3), (4, 5), (6, 7), (8, 9), (0, 10), (1, 10), (10, 13), (11, 13), (12, 13), (11, 14), (12, 14)]
SIZE = 96
CACHE_VERSION = "3"  # bump when the cached arrays change meaning


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kp"


def parse_pixels(text: str, at: str) -> np.ndarray:
    with warnings.catch_warnings():  # numpy warns (and will raise) where a token is not an integer
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            raise DataError(f"{at}: Image has values that are not integers") from None
    if values.size != SIZE * SIZE:
        raise DataError(f"{at}: Image has {values.size} values, expected {SIZE * SIZE} ({SIZE}×{SIZE})")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{at}: Image has values outside 0..255")
    return values.astype(np.uint8).reshape(SIZE, SIZE)


def _parse_training(path: Path) -> dict[str, np.ndarray]:
    """Every good row of training.csv: images N×96×96 uint8, keypoints N×15×2 (NaN: missing), their CSV lines, and
    the reasons for the rows skipped."""
    skips = SkipLog(str(path))
    images, keypoints, lines = [], [], []
    rows = read_csv(path)
    if not rows:
        raise DataError(f"{path}: empty file")
    header = rows[0][1]
    wanted = [f"{name}_{axis}" for name in NAMES for axis in "xy"] + ["Image"]
    missing = [column for column in wanted if column not in header]
    extra = [column for column in header if column not in wanted]
    if missing or extra:
        raise DataError(
            f"{path}:1: header does not match the 15 Kaggle keypoints (x, y) + Image: "
            f"missing {missing}, unexpected {extra}"
        )
    columns = [header.index(column) for column in wanted]
    for line, row in rows[1:]:
        at = where(path, line)
        try:
            if len(row) != len(header):
                raise DataError(f"{at}: {len(row)} columns, expected {len(header)}")
            values = [row[c] for c in columns]
            points = np.array(
                [
                    np.nan if not text.strip() else parse_number(text, at, f"{wanted[i]} value")
                    for i, text in enumerate(values[:-1])
                ],
                np.float32,
            ).reshape(len(NAMES), 2)
            image = parse_pixels(values[-1], at)
        except DataError as error:
            skips.skip(str(error))
            continue
        images.append(image)
        keypoints.append(points)
        lines.append(line)
    # The same face twice (same pixels): again with the same labels is skipped, with other labels an error.
    places = [where(path, line) for line in lines]
    kept = drop_repeats([digest(image.tobytes()) for image in images], keypoints, places, skips, "the same image")
    images, keypoints, lines = [images[i] for i in kept], [keypoints[i] for i in kept], [lines[i] for i in kept]
    keypoints = np.stack(keypoints) if keypoints else np.zeros((0, len(NAMES), 2), np.float32)
    good, labelled = check_points(
        keypoints, np.full((len(keypoints), 2), SIZE), [places[i] for i in kept], NAMES, path, skips
    )
    keypoints = np.where(labelled[:, :, None], keypoints, np.nan)[good].astype(np.float32)
    return {
        "images": np.stack(images)[good] if images else np.zeros((0, SIZE, SIZE), np.uint8),
        "keypoints": keypoints,
        "lines": np.array(lines, np.int64)[good] if lines else np.zeros(0, np.int64),
        "skipped": np.array(skips.reasons, dtype=str),
    }


@functools.lru_cache(maxsize=4)
def _load_training(path: Path, size: int, mtime_ns: int, cache_dir: Path) -> dict[str, np.ndarray]:
    """Parsed training.csv, from the cache when its content was parsed before (memoised per process: the three
    splits share one parse)."""
    digest = hashlib.blake2b(CACHE_VERSION.encode(), digest_size=16)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    cached = cache_dir / "facial" / f"{digest.hexdigest()}.npz"
    if cached.exists():
        try:
            with np.load(cached) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # a cut-off or damaged cache file
            log.warning("%s: unreadable parse cache (%s): parsing %s again", cached, error, path)
    log.info("parsing %s once; cached as %s", path, cached)
    parsed = _parse_training(path)
    partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")  # written whole, then renamed: no half-read caches
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, **parsed)
        os.replace(partial, cached)
    except OSError as error:  # a file where the folder should be, no permission, a full disk
        raise DataError(
            f"data.dataset.cache_dir={cache_dir}: cannot hold the parse cache ({error.strerror or error}: "
            f"{error.filename or cached}): point it at a folder, or null for {default_cache_dir()}"
        ) from None
    return parsed


class FacialKeypoints(KeypointDataset):
    meta = KeypointMeta(names=NAMES, flip_pairs=FLIP_PAIRS, skeleton=SKELETON, norm_pair=(0, 1))
    fit_size = (SIZE, SIZE)
    # Measured on facial68 photos: the eye distance is 0.36 Haar boxes and 29 px of these 96-px crops, and the nose
    # tip (at the crops' centre row) 0.12 boxes below the box centre.
    face_crop = (1.2, 0.12)

    def __init__(
        self,
        split: str,
        root: str | Path,
        subset: str = "complete",
        val_fraction: float = 0.1,
        test_fraction: float = 0.0,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        split_by: str = "similarity",
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        """test_fraction=0 (the default: Kaggle's test.csv has no labels) makes the test split the validation rows."""
        super().__init__(transform, max_pixels)
        check_split(split)
        if subset not in ("complete", "all"):
            raise ValueError(f"subset must be 'complete' or 'all', got {subset!r}")
        if split_by not in ("similarity", "row"):
            raise ValueError(f"split_by must be 'similarity' or 'row', got {split_by!r}")
        path = Path(root) / "training.csv"
        if not path.is_file():
            raise DataError(f"{path}: not found (data.dataset.root should hold the Kaggle files)")
        stat = path.stat()
        data = _load_training(
            path.resolve(), stat.st_size, stat.st_mtime_ns, Path(cache_dir) if cache_dir else default_cache_dir()
        )
        self.source, self.issues = str(path), [str(reason) for reason in data["skipped"]]
        if split == "train":  # report once, not once per split
            skips = SkipLog(str(path))
            skips.reasons = self.issues
            skips.report(log)

        n = len(data["images"])
        groups = similarity_groups(data["images"]) if split_by == "similarity" else [str(row) for row in range(n)]
        if split == "train":
            log.info("%s: split by %s: %d group(s) of %d images", path, split_by, len(set(groups)), n)
        fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
        chosen = np.array(
            split_groups(
                groups,
                "val" if split == "test" and not test_fraction else split,
                fractions,
                seed,
                f"{path} by {split_by}",
                fractions_of="samples",
            )
        )
        if subset == "complete":
            chosen = chosen[np.isfinite(data["keypoints"][chosen]).all(axis=(1, 2))]
        self.rows = np.sort(chosen)
        self.repeats = "val" if split == "test" and not test_fraction else None  # the test split is val here
        self.images, self.keypoints, self.lines = data["images"], data["keypoints"], data["lines"]
        self.path, self.split = path, split
        log.info("facial %s (subset=%s): %d images", split, subset, len(self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def labelled(self) -> np.ndarray:
        return np.isfinite(self.keypoints[self.rows]).all(axis=2)

    def image_sources(self) -> list[tuple[str, bytes]]:
        return [(f"{self.path}:{self.lines[row]}", self.images[row].tobytes()) for row in self.rows]

    def load(self, index: int) -> RawSample:
        row = self.rows[index]
        keypoints = self.keypoints[row]
        return RawSample(
            image=self.images[row][:, :, None],
            keypoints=keypoints,
            visible=np.isfinite(keypoints).all(axis=1),
            id=f"{self.path}:{self.lines[row]}",
        )


def read_test_images(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The unlabelled images of test.csv in file order: (ImageIds N, images N×96×96 uint8). Every test image needs a
    prediction, so a bad row is an error naming its line, not a skip."""
    path = Path(root) / "test.csv"
    ids, images = [], []
    rows = read_csv(path)
    header = rows[0][1] if rows else None
    if header != ["ImageId", "Image"]:
        raise DataError(f"{path}:1: header {header}, expected ['ImageId', 'Image']")
    first_line: dict[int, int] = {}
    for line, row in rows[1:]:
        at = where(path, line)
        if len(row) != 2:
            raise DataError(f"{at}: {len(row)} columns, expected 2 (ImageId, Image)")
        if not row[0].strip().isdigit():
            raise DataError(f"{at}: ImageId {row[0]!r} is not a whole number")
        image_id = int(row[0])
        if first_line.setdefault(image_id, line) != line:
            raise DataError(
                f"{at}: ImageId {image_id} again (first at line {first_line[image_id]}): which image an "
                "IdLookupTable row means is ambiguous; give every test image its own ImageId"
            )
        ids.append(image_id)
        images.append(parse_pixels(row[1], at))
    if not images:
        raise DataError(f"{path}: no images")
    return np.array(ids), np.stack(images)


def write_submission(keypoints: np.ndarray, image_ids, lookup_csv: str | Path, out_csv: str | Path) -> Path:
    """Kaggle submission `RowId,Location` for the rows IdLookupTable.csv asks for; keypoints N×15×2 are pixel
    predictions for image_ids (as read_test_images gives them), clipped to [0, 96]."""
    keypoints = np.clip(np.asarray(keypoints, np.float64), 0.0, float(SIZE))
    index_of = {int(image_id): i for i, image_id in enumerate(image_ids)}
    column_of = {f"{name}_{axis}": (k, a) for k, name in enumerate(NAMES) for a, axis in enumerate("xy")}
    out_csv = Path(out_csv)
    rows = read_csv(lookup_csv)
    header = rows[0][1] if rows else []
    if header[:4] != ["RowId", "ImageId", "FeatureName", "Location"]:
        raise DataError(f"{lookup_csv}:1: header {header}, expected RowId,ImageId,FeatureName,Location")
    with open(out_csv, "w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["RowId", "Location"])
        for line, row in rows[1:]:
            at = where(lookup_csv, line)
            if len(row) < 3 or not row[1].strip().isdigit() or int(row[1]) not in index_of:
                raise DataError(f"{at}: ImageId {row[1] if len(row) > 1 else '(none)'} has no prediction")
            if row[2] not in column_of:
                raise DataError(f"{at}: unknown FeatureName {row[2]!r}")
            k, a = column_of[row[2]]
            writer.writerow([row[0], f"{keypoints[index_of[int(row[1])], k, a]:.4f}"])
    return out_csv
