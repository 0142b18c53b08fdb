"""The card-pack set (ignaciohrdz/cardcut_cnn): photos of a pack of cards, its 8 corners and the number of cards.

`cardpoints.csv` has, per frame, `imageName, annotated, cards_counted, total_cards, videoId` and for each corner
`<pt>_visible, <pt>_x, <pt>_y`. The quirk: `<pt>_x` is the *row* divided by the image height and `<pt>_y` the
*column* divided by the width; an invisible corner is visible=0 at (0, 0). `*_back` are the corners of the pack's top
surface, `*_face` those of its bottom surface: their offset is the pack's thickness, which carries the card count.

Targets: the 8 corners, their visibility, and the count as a fraction of total_cards (meta.count_scale turns it back
into cards). Frames of one video are near-duplicates of one pack, so the split is by videoId.

Bad input (kp.data.io's policy): a missing CSV or column is a DataError; a row with the wrong number of columns, a
bad number or a missing image is skipped and counted in the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import MAX_PIXELS, SkipLog, check_image_file, drop_repeats, parse_number, read_csv, read_image, where
from kp.data.splits import split_groups
from kp.errors import DataError
from kp.geometry import crop_and_resize

log = logging.getLogger(__name__)

POINTS = [
    "upper_left_face",
    "upper_right_face",
    "upper_left_back",
    "upper_right_back",
    "lower_left_face",
    "lower_right_face",
    "lower_left_back",
    "lower_right_back",
]
COLUMNS = ["imageName", "annotated", "cards_counted", "total_cards", "videoId"] + [
    f"{point}_{part}" for point in POINTS for part in ("visible", "x", "y")
]
# A mirror image turns the pack's left corners into right ones (their clockwise order reverses).
FLIP_PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7)]
# Bottom surface ring, top surface ring, and the four vertical edges between them.
SKELETON = [(0, 1), (1, 5), (5, 4), (4, 0), (2, 3), (3, 7), (7, 6), (6, 2), (0, 2), (1, 3), (4, 6), (5, 7)]


@dataclass(frozen=True)
class Frame:
    image: Path
    corners: np.ndarray  # 8×2 fractions of the image (column / width, row / height)
    visible: np.ndarray  # 8 bool
    counted: float
    total: float
    video: str


class CardPacks(KeypointDataset):
    def __init__(
        self,
        split: str,
        root: str,
        csv_file: str = "cardpoints.csv",
        image_dir: str = "images",
        width: int = 160,
        height: int = 120,
        fractions: Mapping[str, float] | None = None,
        seed: int = 0,
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        """root: the folder of csv_file and image_dir. width × height: the working size every frame is resized to
        (the frames are 640×480; the seed used 160×120 and 80×60). fractions: of the videos per split."""
        super().__init__(transform, max_pixels)
        self.size = self.fit_size = (width, height)
        csv_path = Path(root) / csv_file
        self.source = str(csv_path)
        frames, self.issues = _read_frames(
            csv_path, Path(root) / image_dir, csv_path.stat().st_mtime_ns if csv_path.exists() else 0
        )
        chosen = split_groups(
            [f.video for f in frames],
            split,
            fractions or {"train": 0.8, "val": 0.1, "test": 0.1},
            seed,
            f"{csv_path} by videoId",
        )
        self.frames = [frames[i] for i in chosen]
        totals = {f.total for f in frames}
        if len(totals) > 1:
            log.info(
                "%s: total_cards varies (%s): counts are reported as fractions of the pack", csv_path, sorted(totals)
            )
        self.meta = KeypointMeta(
            names=list(POINTS),
            flip_pairs=list(FLIP_PAIRS),
            skeleton=list(SKELETON),
            count_scale=totals.pop() if len(totals) == 1 else None,
        )

    def __len__(self) -> int:
        return len(self.frames)

    def labelled(self) -> np.ndarray:
        return np.array([frame.visible for frame in self.frames]).reshape(len(self.frames), len(POINTS))

    def groups(self) -> list[str]:
        return [frame.video for frame in self.frames]

    def image_sources(self) -> list[tuple[str, Path]]:
        return [(str(frame.image), frame.image) for frame in self.frames]

    def load(self, index: int) -> RawSample:
        frame = self.frames[index]
        image = read_image(frame.image, max_pixels=self.max_pixels)
        height, width = image.shape[:2]
        # Fractions of the image's extent [-0.5, W - 0.5] -> pixel centres at integers.
        keypoints = frame.corners * np.array([width, height], np.float32) - 0.5
        image, keypoints, affine = crop_and_resize(image, keypoints, (0, 0, width, height), self.size)
        return RawSample(
            image=image,
            keypoints=keypoints,
            visible=frame.visible,
            count=frame.counted / frame.total,
            id=str(frame.image),
            affine=affine,
        )


# Cached: the three splits read the file once, and its bad rows are logged once.
@functools.lru_cache(maxsize=4)
def _read_frames(csv_path: Path, image_dir: Path, mtime_ns: int) -> tuple[list[Frame], list[str]]:
    rows = read_csv(csv_path)
    header = rows[0][1] if rows else []
    rows = rows[1:]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {missing}; a card-pack CSV has {COLUMNS}")
    column = {name: header.index(name) for name in COLUMNS}
    frames, places, skips, unannotated = [], [], SkipLog(str(csv_path)), 0
    for line, fields in rows:
        at = where(csv_path, line)
        try:
            if len(fields) != len(header):
                raise DataError(f"{at}: {len(fields)} columns, the header has {len(header)}")
            cell = {name: fields[i].strip() for name, i in column.items()}
            if cell["annotated"] != "1":
                unannotated += 1
                continue
            frames.append(_parse_frame(cell, at, image_dir))
            places.append(at)
        except DataError as error:
            skips.skip(str(error))
    kept = drop_repeats(
        [frame.image.name for frame in frames],
        [np.concatenate([f.corners.ravel(), f.visible, [f.counted, f.total]]) for f in frames],
        places,
        skips,
    )
    frames = [frames[i] for i in kept]
    skips.report(log)
    if not frames and any("outside [0, 1]" in reason for reason in skips.reasons):
        raise DataError(
            f"{csv_path}: no usable row, corners outside [0, 1]: the coordinates look like pixels or "
            "percentages; a card-pack CSV holds fractions of the image size (row / height, column / width)"
        )
    if unannotated:
        log.info("%s: left out %d frames marked annotated != 1", csv_path, unannotated)
    return frames, skips.reasons


def _parse_frame(cell: dict[str, str], at: str, image_dir: Path) -> Frame:
    corners, visible = [], []
    for point in POINTS:
        flag = cell[f"{point}_visible"]
        if flag not in ("0", "1"):
            raise DataError(f"{at}: {point}_visible is {flag!r}, expected 0 or 1")
        # The quirk: <pt>_x is the row / height and <pt>_y the column / width.
        column = parse_number(cell[f"{point}_y"], at, f"{point}_y")
        row = parse_number(cell[f"{point}_x"], at, f"{point}_x")
        if flag == "1" and not (0 <= column <= 1 and 0 <= row <= 1):
            raise DataError(
                f"{at}: {point} at ({cell[f'{point}_x']}, {cell[f'{point}_y']}) is outside [0, 1]: "
                "coordinates must be fractions of the image size"
            )
        corners.append((column, row))
        visible.append(flag == "1")
    counted = parse_number(cell["cards_counted"], at, "cards_counted")
    total = parse_number(cell["total_cards"], at, "total_cards")
    if not 0 < counted <= total:
        raise DataError(f"{at}: cards_counted {counted:g} is not within 1..total_cards ({total:g})")
    if not cell["videoId"]:
        raise DataError(f"{at}: videoId is empty (the split needs it)")
    image = image_dir / cell["imageName"]
    check_image_file(image, at)
    return Frame(image, np.array(corners, np.float32), np.array(visible), counted, total, cell["videoId"])
