"""The Kaggle CAT dataset: cat photos with 9 head keypoints each.

Layout (exactly the release's): `root/CAT_00` … `root/CAT_06`, each image `X.jpg` beside its label `X.jpg.cat`, one
line of text `9 x1 y1 … x9 y9` in pixels: left eye, right eye, mouth, left ear 1–3, right ear 1–3.
`keypoints` selects which of the 9 are kept (default: the eyes and the mouth, as the cat seed).

preprocess="seed" is the cat seed's recipe: resize the image to 128×128, crop the box around the kept keypoints plus a
20-pixel border (within the image); the config's transforms then resize to 64×64. preprocess="none" hands the whole
photo to the transforms. The split is 60/20/20 in file order (folders, then names), without shuffling, as the seed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import (
    MAX_PIXELS,
    SkipLog,
    check_points,
    drop_repeats,
    image_size,
    parse_number,
    read_image,
    read_text,
    where,
)
from kp.data.splits import SPLITS, check_split
from kp.errors import DataError

log = logging.getLogger(__name__)

ALL_NAMES = [
    "left_eye",
    "right_eye",
    "mouth",
    "left_ear_1",
    "left_ear_2",
    "left_ear_3",
    "right_ear_1",
    "right_ear_2",
    "right_ear_3",
]
FOLDERS = [f"CAT_0{i}" for i in range(7)]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EDGES = [
    ("left_eye", "right_eye"),
    ("left_eye", "mouth"),
    ("right_eye", "mouth"),
    ("left_ear_1", "left_ear_2"),
    ("left_ear_2", "left_ear_3"),
    ("right_ear_1", "right_ear_2"),
    ("right_ear_2", "right_ear_3"),
]


def cat_meta(names: list[str]) -> KeypointMeta:
    """Flip pairs and skeleton among the kept keypoints."""
    index = {name: i for i, name in enumerate(names)}
    pairs = [
        (i, index[name.replace("left", "right")])
        for name, i in index.items()
        if name.startswith("left") and name.replace("left", "right") in index
    ]
    skeleton = [(index[a], index[b]) for a, b in EDGES if a in index and b in index]
    norm_pair = (index["left_eye"], index["right_eye"]) if {"left_eye", "right_eye"} <= index.keys() else None
    return KeypointMeta(names=list(names), flip_pairs=pairs, skeleton=skeleton, norm_pair=norm_pair)


def read_cat_file(path: Path) -> np.ndarray:
    """The 9×2 keypoints of one .cat file, or DataError naming the file and what is wrong."""
    tokens = read_text(path).split()
    at = where(path, 1)
    if not tokens:
        raise DataError(f"{at}: empty")
    count = parse_number(tokens[0], at, "keypoint count")
    if count != len(ALL_NAMES):
        raise DataError(f"{at}: declares {tokens[0]} keypoints, the CAT format has {len(ALL_NAMES)}")
    if len(tokens) != 1 + 2 * len(ALL_NAMES):
        raise DataError(f"{at}: {len(tokens) - 1} coordinates, expected {2 * len(ALL_NAMES)}")
    return np.array([parse_number(t, at) for t in tokens[1:]], np.float32).reshape(len(ALL_NAMES), 2)


def seed_crop(
    image: np.ndarray, keypoints: np.ndarray, resize: int, border: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cat seed's preprocessing: resize to resize×resize, then crop the keypoints' box plus `border` pixels.
    Returns the crop, its keypoints and the 2×3 affine from the photo's pixels to the crop's."""
    height, width = image.shape[:2]
    image = cv2.resize(image, (resize, resize), interpolation=cv2.INTER_AREA)
    sx, sy = resize / width, resize / height
    keypoints = (keypoints + 0.5) * np.array([sx, sy], np.float32) - 0.5  # about pixel centres, as cv2.resize does
    x0, y0 = np.clip(np.floor(keypoints.min(axis=0)) - border, 0, resize - 1).astype(int)
    x1, y1 = np.clip(np.ceil(keypoints.max(axis=0)) + border, x0, resize - 1).astype(int)
    affine = np.array([[sx, 0.0, 0.5 * sx - 0.5 - x0], [0.0, sy, 0.5 * sy - 0.5 - y0]])
    return image[y0 : y1 + 1, x0 : x1 + 1], keypoints - np.array([x0, y0], np.float32), affine


class CatHeads(KeypointDataset):
    def __init__(
        self,
        split: str,
        root: str | Path,
        keypoints: list[str] = ("left_eye", "right_eye", "mouth"),
        folders: list[str] = tuple(FOLDERS),
        preprocess: str = "seed",
        resize: int = 128,
        border: int = 20,
        fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        super().__init__(transform, max_pixels)
        check_split(split)
        if preprocess not in ("seed", "none"):
            raise ValueError(f"preprocess must be 'seed' or 'none', got {preprocess!r}")
        unknown = [name for name in keypoints if name not in ALL_NAMES]
        if unknown or not keypoints:
            raise ValueError(f"unknown CAT keypoints {unknown}: choose among {ALL_NAMES}")
        self.kept = [ALL_NAMES.index(name) for name in keypoints]
        self.meta = cat_meta(list(keypoints))
        self.preprocess, self.resize, self.border = preprocess, resize, border
        # A new photo has no keypoints to crop around: it is letterboxed to the size the seed's crops come from.
        self.fit_size = (resize, resize) if preprocess == "seed" else None

        self.source = str(root)
        images, labels, visible, self.issues = self._scan(Path(root), folders, split == "train", max_pixels)
        bounds = np.round(np.cumsum([0, *fractions]) / sum(fractions) * len(images)).astype(int)
        start, stop = bounds[SPLITS.index(split)], bounds[SPLITS.index(split) + 1]
        self.images, self.labels, self.visible = images[start:stop], labels[start:stop], visible[start:stop]
        log.info(
            "cat %s: %d images (%s to %s)",
            split,
            len(self.images),
            self.images[0].name if self.images else "-",
            self.images[-1].name if self.images else "-",
        )

    @staticmethod
    def _scan(
        root: Path, folders: list[str], report: bool, max_pixels: int
    ) -> tuple[list[Path], list[np.ndarray], np.ndarray, list[str]]:
        """The images with their 9×2 labels and which of those are labelled, and the reasons for what was left out."""
        missing = [folder for folder in folders if not (root / folder).is_dir()]
        if missing:
            raise DataError(
                f"{root}: folders {missing} not found (expected the CAT_00 … CAT_06 layout; "
                f"data.dataset.folders lists the ones to use)"
            )
        skips = SkipLog(f"CAT dataset in {root}")
        images, labels, sizes = [], [], []
        for folder in folders:
            files = sorted((root / folder).iterdir())
            for file in files:
                if file.suffix.lower() == ".cat":
                    if not file.with_suffix("").is_file():
                        skips.skip(f"{file}: image {file.with_suffix('').name} not found")
                    continue
                if file.suffix.lower() not in IMAGE_SUFFIXES:  # .JPG and .jpeg count as much as .jpg
                    skips.skip(f"{file}: neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a .cat label")
                    continue
                label = file.with_name(file.name + ".cat")
                try:
                    if not label.is_file():
                        raise DataError(f"{file}: no label file {label.name}")
                    size, points = image_size(file, max_pixels), read_cat_file(label)
                except DataError as error:
                    skips.skip(str(error))
                    continue
                labels.append(points)
                sizes.append(size)
                images.append(file)
        places = [f"{image}.cat" for image in images]
        # One photo in two folders (the same file name): labelled alike, the repeat is skipped; else an error.
        kept = drop_repeats([image.name for image in images], labels, places, skips)
        images, labels, sizes, places = ([items[i] for i in kept] for items in (images, labels, sizes, places))
        good, labelled = check_points(labels, sizes, places, ALL_NAMES, root, skips)
        if report:
            skips.report(log)
        keep = np.flatnonzero(good)
        return [images[i] for i in keep], [labels[i] for i in keep], labelled[keep], skips.reasons

    def labelled(self) -> np.ndarray:
        return self.visible[:, self.kept]

    def image_sources(self) -> list[tuple[str, Path]]:
        return [(str(image), image) for image in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> RawSample:
        image = read_image(self.images[index], max_pixels=self.max_pixels)
        keypoints = self.labels[index][self.kept]
        affine = None
        if self.preprocess == "seed":
            image, keypoints, affine = seed_crop(image, keypoints, self.resize, self.border)
        return RawSample(
            image=image,
            keypoints=keypoints,
            visible=self.visible[index][self.kept],
            id=str(self.images[index]),
            affine=affine,
        )
