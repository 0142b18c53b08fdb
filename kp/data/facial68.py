"""The 68-landmark YouTube-Faces set of the PyTorch facial seed (iBUG-68 order).

`root/keypoints.csv`: a header `,0,1,…,135`, then per image its file name (in `root/images/`) and x0,y0,…,x67,y67 in
pixels of the original image (x = column). Images vary in size, so the config's transforms bring them to one size
(the seed: shorter side to 250, random 224×224 crop, grey; the [0, 1] scaling is the data contract's, and the coords
target normalises keypoints to [-1, 1] where the seed used (x - 100) / 50). The original release stores PNG bytes
under .jpg names: images are read by content.

File names are `<Person_Name>_<NN>.jpg` and all frames of one person are near-duplicates, so the split is by person:
no face seen in training is validated or tested on.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import (
    DataError,
    SkipLog,
    check_split,
    check_units,
    drop_repeats,
    far_outside,
    image_size,
    parse_number,
    read_csv,
    read_image,
    split_groups,
    where,
)

log = logging.getLogger(__name__)

NUM_KEYPOINTS = 68
# iBUG-68 groups; "left" is the person's left (image right), as in the Kaggle names.
GROUPS = {
    "jaw": range(0, 17), "right_eyebrow": range(17, 22), "left_eyebrow": range(22, 27), "nose_bridge": range(27, 31),
    "nose_base": range(31, 36), "right_eye": range(36, 42), "left_eye": range(42, 48), "outer_lip": range(48, 60),
    "inner_lip": range(60, 68),
}
NAMES = [f"{group}_{i - indices.start}" for group, indices in GROUPS.items() for i in indices]
FLIP_PAIRS = (
    [(i, 16 - i) for i in range(8)]  # jaw
    + [(17 + i, 26 - i) for i in range(5)]  # eyebrows
    + [(31, 35), (32, 34)]  # nostrils
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]  # lips
)
CLOSED = {"right_eye", "left_eye", "outer_lip", "inner_lip"}
SKELETON = [(i, i + 1) for indices in GROUPS.values() for i in indices[:-1]] + [
    (indices[-1], indices[0]) for group, indices in GROUPS.items() if group in CLOSED]


def person_of(file_name: str) -> str:
    """`Lincoln_Chafee_52.jpg` -> `Lincoln_Chafee`."""
    return re.sub(r"_\d+$", "", Path(file_name).stem)


class Facial68(KeypointDataset):
    # Measured on these photos: their shorter side is 2.0 Haar face boxes (median; 1.7-2.3 for 80 %).
    face_crop = (2.0, 0.0)

    meta = KeypointMeta(names=NAMES, flip_pairs=FLIP_PAIRS, skeleton=SKELETON, norm_pair=(36, 45))

    def __init__(
        self,
        split: str,
        root: str | Path,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        transform=None,
    ):
        super().__init__(transform)
        check_split(split)
        root = Path(root)
        self.source = str(root / "keypoints.csv")
        labels = root / "keypoints.csv"
        files, keypoints, self.issues = _read_labels(labels, root / "images", labels.stat().st_mtime_ns
                                                     if labels.exists() else 0)
        # People in a seeded random order fill test, then val, up to their share of the images; the rest is train.
        fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
        chosen = split_groups([person_of(f.name) for f in files], split, fractions, seed,
                              f"{root / 'keypoints.csv'} by person", fractions_of="samples")
        self.files = [files[i] for i in chosen]
        self.keypoints = keypoints[chosen]
        log.info("facial68 %s: %d images of %d people", split, len(self.files),
                 len({person_of(f.name) for f in self.files}))

    def __len__(self) -> int:
        return len(self.files)

    def labelled(self) -> np.ndarray:
        return np.ones((len(self.files), NUM_KEYPOINTS), bool)

    def groups(self) -> list[str]:
        return [person_of(f.name) for f in self.files]

    def image_sources(self) -> list[tuple[str, Path]]:
        return [(str(f), f) for f in self.files]

    def load(self, index: int) -> RawSample:
        return RawSample(image=read_image(self.files[index]), keypoints=self.keypoints[index],
                         visible=np.ones(NUM_KEYPOINTS, bool), id=str(self.files[index]))


# Cached: the three splits read the file (and every image's size) once, and its bad rows are logged once.
@functools.lru_cache(maxsize=4)
def _read_labels(path: Path, image_dir: Path, mtime_ns: int) -> tuple[list[Path], np.ndarray, list[str]]:
    if not path.is_file():
        raise DataError(f"{path}: not found (data.dataset.root should hold keypoints.csv and images/)")
    skips = SkipLog(str(path))
    rows = read_csv(path)
    header = rows[0][1] if rows else []
    if len(header) != 1 + 2 * NUM_KEYPOINTS:
        raise DataError(f"{path}:1: {len(header) - 1} coordinate columns, but the config's dataset has "
                        f"{NUM_KEYPOINTS} keypoints ({2 * NUM_KEYPOINTS} columns x0,y0,…)")
    files, keypoints, places, sizes = [], [], [], []
    for line, row in rows[1:]:
        at = where(path, line)
        try:
            if len(row) != len(header):
                raise DataError(f"{at}: {len(row)} columns, expected {len(header)}")
            points = [parse_number(text, at, f"column {header[i + 1]}") for i, text in enumerate(row[1:])]
            image = image_dir / row[0]
            if not image.is_file():
                raise DataError(f"{at}: image {image} not found")
            size = image_size(image)
        except DataError as error:
            skips.skip(str(error))
            continue
        files.append(image)
        keypoints.append(np.array(points, np.float32).reshape(NUM_KEYPOINTS, 2))
        places.append(at)
        sizes.append(size)
    kept = drop_repeats([f.name for f in files], keypoints, places, skips)
    files, keypoints, sizes = [files[i] for i in kept], [keypoints[i] for i in kept], [sizes[i] for i in kept]
    keypoints = np.stack(keypoints) if keypoints else np.zeros((0, NUM_KEYPOINTS, 2), np.float32)
    check_units(keypoints, np.array(sizes).reshape(-1, 2), path)
    far = far_outside(keypoints, np.array(sizes).reshape(-1, 1, 2)).any(axis=1)
    for i in np.flatnonzero(far):
        skips.skip(f"{places[kept[i]]}: a keypoint lies far outside the {sizes[i][0]}×{sizes[i][1]} image")
    skips.report(log)
    return [f for f, bad in zip(files, far) if not bad], keypoints[~far], skips.reasons
