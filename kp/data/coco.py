"""Any COCO-keypoints JSON: one sample per annotated instance, cropped from its box and resized to a square.

The JSON holds `images` (id, file_name), `annotations` (image_id, category_id, bbox [x, y, w, h], keypoints as
x, y, v triples: v = 0 unlabelled, 1 labelled but occluded, 2 visible) and `categories` (keypoint names and a
1-based skeleton). Keypoint names, flip pairs and skeleton come from the category; flip pairs are guessed from
left/right-style names (`left_eye`, `L_Eye`, `eyeL`, `forelegR1`) unless the config lists them.

Bad input follows kp.data.io's policy: a file of another kind or a keypoint count that differs from the category is
a DataError at start; an annotation with bad numbers or a missing image is skipped and counted in the log.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import MAX_PIXELS, SkipLog, check_image_file, check_points, image_size, read_image, read_text
from kp.data.keypoint_pairs import flip_pairs_from_names, resolve_pairs
from kp.data.splits import describe_recorded, read_recorded, recorded_split, split_groups
from kp.errors import DataError
from kp.geometry import crop_and_resize

log = logging.getLogger(__name__)


class CocoKeypoints(KeypointDataset):
    def __init__(
        self,
        split: str,
        ann_file: str | Mapping[str, str],
        image_dir: str | None = None,
        size: int = 128,
        margin: float = 0.25,
        category: str | int | None = None,
        names: list[str] | None = None,
        flip_pairs: list[list] | None = None,
        occluded_visible: bool = False,
        fractions: Mapping[str, float] | None = None,
        seed: int = 0,
        splits_from: str | None = None,
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        """ann_file: one JSON split by image with `fractions`, or a mapping {train: ..., val: ..., test: ...} of one
        JSON per split. image_dir: where file_name is relative to (default: the JSON's folder). size: the square
        crop's side in pixels; margin: added around the box, as a fraction of its longer side. category: keep only
        this category (name or id); default all, which must share their keypoints. names: keypoint names where the
        category has none (face sets), or to rename. flip_pairs: [[name, name], ...] instead of the guess from names.
        occluded_visible: train on v=1 points too (some converters, e.g. of face sets, write v=1 for every point).
        splits_from: a run directory (or its splits.csv) whose split every image it lists keeps; new images go to
        train (one JSON split by image only; kp.data.splits.recorded_split)."""
        super().__init__(transform, max_pixels)
        one_file_per_split = isinstance(ann_file, Mapping)
        if one_file_per_split and split not in ann_file:
            raise DataError(f"ann_file has no file for the {split} split: {dict(ann_file)}")
        path = Path(ann_file[split] if one_file_per_split else ann_file)
        self.size, self.margin, self.occluded_visible = size, margin, occluded_visible
        self.fit_size = (size, size)  # a new image has no box: the whole of it, letterboxed
        data = _load_json(path)
        self.image_root = image_root = Path(image_dir) if image_dir is not None else path.parent
        images = _images_by_id(data["images"], path)
        whole_file = SkipLog(str(path))  # what is left out of the file before its split: logged once, by train
        annotations, category_entry = self._select_category(data, category, path, whole_file)
        annotations = _drop_repeated_images(annotations, images, image_root, path, whole_file)
        key_names = self._keypoint_names(category_entry, annotations[0], names, path)

        if one_file_per_split:
            chosen = range(len(annotations))
        elif splits_from:
            files = [self._file_name(image_root / images[a["image_id"]]["file_name"]) for a in annotations]
            recorded = read_recorded(splits_from)
            if split == "train":
                log.info("%s: %s", path, describe_recorded(sorted(set(files)), recorded, splits_from))
            groups = [str(a["image_id"]) for a in annotations]
            chosen = recorded_split(files, groups, split, recorded, f"{path} by image")
        else:
            chosen = split_groups(
                [str(a["image_id"]) for a in annotations],
                split,
                fractions or {"train": 0.8, "val": 0.1, "test": 0.1},
                seed,
                f"{path} by image",
            )
        skips = SkipLog(str(path))
        self.samples, self.ids, unlabelled = self._read_samples(
            [annotations[i] for i in chosen], images, image_root, key_names, path, skips
        )
        if one_file_per_split or split == "train":
            whole_file.report(log)
        skips.report(log)
        self.source, self.issues = str(path), whole_file.reasons + skips.reasons
        if unlabelled:
            log.info("%s: left out %d %s annotations without labelled keypoints", path, unlabelled, split)
        self._refuse_unusable(split, path)
        pairs = (
            resolve_pairs(flip_pairs, key_names, f"{path} flip_pairs")
            if flip_pairs is not None
            else flip_pairs_from_names(key_names)
        )
        self.meta = KeypointMeta(
            names=key_names, flip_pairs=pairs, skeleton=self._skeleton(category_entry, len(key_names), path)
        )

    def _read_samples(
        self, annotations: list[dict], images: dict, image_root: Path, key_names: list[str], path: Path, skips: SkipLog
    ) -> tuple[list[tuple], list[str], int]:
        """(samples: image path, keypoints, visible, box; their ids; how many annotations had no labelled keypoint).
        A bad annotation is skipped into `skips`, as is one whose points fail check_points (a point just outside its
        image is left unlabelled); one of another kind of file is a DataError."""
        samples, ids, places, sizes, unlabelled = [], [], [], [], 0
        for annotation in annotations:
            where = f"annotation id {annotation['id']}"
            if annotation["image_id"] not in images:
                raise DataError(f"{path}: {where} refers to image_id {annotation['image_id']}, which is not in images")
            values = _flatten(annotation.get("keypoints") or [])
            if len(values) != 3 * len(key_names):
                # Not one bad annotation but a file of another kind (e.g. whole-body points under a 17-point category).
                raise DataError(
                    f"{path}: {where} has {len(values)} keypoint values, expected {len(key_names)} x,y,v triples"
                )
            image = images[annotation["image_id"]]
            image_path = image_root / image["file_name"]
            try:
                sample = self._parse(values, annotation.get("bbox"), where)
                if sample is not None:
                    check_image_file(image_path, where)
                    # The points are checked against the image: its size from the JSON, else from its header.
                    sizes.append(_size(image) or image_size(image_path, self.max_pixels))
            except DataError as error:
                skips.skip(f"{path}: {error}")
                continue
            if sample is None:
                unlabelled += 1
                continue
            samples.append((image_path, *sample))
            ids.append(f"{image_path}#annotation {annotation['id']}")
            places.append(f"{path}: {where}")
        points = [np.where(labelled[:, None], keypoints, np.nan) for _, keypoints, labelled, _, _ in samples]
        good, labelled = check_points(points, sizes, places, key_names, path, skips)
        kept = [
            (image_path, keypoints, visible & still, box)
            for (image_path, keypoints, _, visible, box), still, ok in zip(samples, labelled, good)
            if ok
        ]
        return kept, [id_ for id_, ok in zip(ids, good) if ok], unlabelled

    def _refuse_unusable(self, split: str, path: Path) -> None:
        if not self.samples:
            raise DataError(f"{path}: no usable annotation in the {split} split")
        if not any(visible.any() for _, _, visible, _ in self.samples):
            raise DataError(
                f"{path}: no keypoint of the {split} split is visible (v=2), so nothing would be learnt. "
                "If this file marks every labelled point v=1, as many face and hand converters do, set "
                "occluded_visible=true"
            )

    @staticmethod
    def _select_category(data: dict, category: str | int | None, path: Path, skips: SkipLog) -> tuple[list[dict], dict]:
        """The instances to use (not crowds, of the chosen category, else of every category with keypoints) and their
        category's entry; the annotations of other categories are left out, counted in `skips`."""
        if not all(isinstance(c, dict) and "id" in c for c in data["categories"]):
            raise DataError(f"{path}: every entry of categories needs an id")
        categories = {c["id"]: c for c in data["categories"]}
        if category is not None:
            ids = [c["id"] for c in data["categories"] if category in (c["id"], c.get("name"))]
            if not ids:
                known = [c.get("name") for c in data["categories"]]
                raise DataError(f"{path}: no category {category!r}; there are {known}")
        else:  # the categories with keypoint names; where none has them (face sets), every category
            ids = [i for i, c in categories.items() if c.get("keypoints")] or list(categories)
        for i, a in enumerate(data["annotations"]):
            missing = [key for key in ("id", "image_id", "category_id") if not isinstance(a, dict) or key not in a]
            if missing:
                raise DataError(
                    f"{path}: annotations[{i}] has no {', '.join(missing)} (every COCO annotation needs id, "
                    "image_id and category_id)"
                )
            if a["category_id"] not in categories:
                raise DataError(
                    f"{path}: annotations[{i}] (id {a['id']}) has category_id {a['category_id']}, which is not in "
                    f"categories {sorted(categories)}"
                )
        kept = [c.get("name", i) for i, c in categories.items() if i in ids]
        for a in data["annotations"]:
            if a["category_id"] not in ids:
                other = categories[a["category_id"]].get("name", a["category_id"])
                skips.skip(f"{path}: annotation id {a['id']}: category {other!r} is not among {kept}: left out")
        # Crowd regions are not single instances: COCO gives them no keypoints.
        annotations = [a for a in data["annotations"] if a["category_id"] in ids and not a.get("iscrowd", 0)]
        used = {a["category_id"] for a in annotations}
        if len({tuple(categories[i].get("keypoints") or []) for i in used}) > 1:
            raise DataError(
                f"{path}: categories {sorted(categories[i].get('name') for i in used)} have different "
                "keypoints: choose one with category=<name>"
            )
        if not annotations:
            raise DataError(f"{path}: no annotations of category {category if category is not None else 'any'}")
        return annotations, categories[annotations[0]["category_id"]]

    @staticmethod
    def _keypoint_names(category: dict, first: dict, names: list[str] | None, path: Path) -> list[str]:
        json_names = list(category.get("keypoints") or [])
        # Face sets ship categories without names: count the first annotation's triples.
        count = len(json_names) or len(_flatten(first.get("keypoints") or [])) // 3
        if names is not None and len(names) != count:
            raise DataError(f"{path}: the config lists {len(names)} keypoint names but the data has {count} keypoints")
        return list(names or json_names or [f"kp{i}" for i in range(count)])

    def _parse(self, values: list, bbox, where: str) -> tuple | None:
        """(keypoints K×2, labelled K, visible K, box) of one annotation, None when it has no labelled keypoint."""
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise DataError(f"{where}: a keypoint value is not a number")
        triples = np.array(values, np.float64).reshape(-1, 3)
        v = triples[:, 2]
        if not np.isin(v, (0, 1, 2)).all():
            raise DataError(f"{where}: visibility flags must be 0, 1 or 2, got {sorted(set(v.tolist()) - {0, 1, 2})}")
        labelled = v > 0
        if not np.isfinite(triples[labelled, :2]).all():
            raise DataError(f"{where}: a labelled keypoint has a non-finite coordinate")
        if not labelled.any():
            return None
        visible = (v == 2) | (self.occluded_visible & (v == 1))
        keypoints = np.where(labelled[:, None], triples[:, :2], 0.0).astype(np.float32)
        return keypoints, labelled, visible, self._box(bbox, keypoints[labelled])

    def _box(self, bbox, labelled_points: np.ndarray) -> tuple[int, int, int, int]:
        """A square in whole pixels around the bbox and the labelled keypoints (some files have boxes that cut off
        keypoints, some have no box), grown by the margin."""
        (x, y), (x1, y1) = labelled_points.min(axis=0), labelled_points.max(axis=0)
        try:
            bx, by, bw, bh = (float(b) for b in bbox)
            if bw > 0 and bh > 0 and all(map(math.isfinite, (bx, by, bw, bh))):
                x, y, x1, y1 = min(x, bx), min(y, by), max(x1, bx + bw), max(y1, by + bh)
        except (TypeError, ValueError):
            pass  # no usable box: the keypoints alone
        w, h = x1 - x, y1 - y
        side = max(2, int(round(max(w, h, 1.0) * (1 + self.margin))))
        return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side, side

    @staticmethod
    def _skeleton(category: dict, num_keypoints: int, path: Path) -> list[tuple[int, int]]:
        edges = [tuple(int(i) for i in edge) for edge in category.get("skeleton") or []]
        ends = [i for edge in edges for i in edge]
        if not ends:
            return []
        # COCO counts skeleton keypoints from 1; a few tools write 0-based edges, which give themselves away by a 0.
        base = 0 if min(ends) == 0 else 1
        if min(ends) < 0 or max(ends) - base >= num_keypoints:
            raise DataError(f"{path}: category skeleton has keypoint numbers outside 1..{num_keypoints}")
        return [(i - base, j - base) for i, j in edges]

    def __len__(self) -> int:
        return len(self.samples)

    def labelled(self) -> np.ndarray:
        return np.array([visible for _, _, visible, _ in self.samples])

    def groups(self) -> list[str]:  # the split is by image: its several animals stay together
        return [str(image_path) for image_path, *_ in self.samples]

    def image_sources(self) -> list[tuple[str, Path]]:
        # named by file_name (relative to the image folder, as the JSON says it): splits.csv's names, which a moved
        # project keeps
        return [(self._file_name(image_path), image_path) for image_path, *_ in self.samples]

    def _file_name(self, image_path: Path) -> str:
        root = self.image_root
        return image_path.relative_to(root).as_posix() if image_path.is_relative_to(root) else str(image_path)

    def load(self, index: int) -> RawSample:
        image_path, keypoints, visible, box = self.samples[index]
        image = read_image(image_path, max_pixels=self.max_pixels)
        image, keypoints, affine = crop_and_resize(image, keypoints, box, (self.size, self.size))
        return RawSample(image=image, keypoints=keypoints, visible=visible, id=self.ids[index], affine=affine)


def _drop_repeated_images(
    annotations: list[dict], images: dict, image_root: Path, path: Path, skips: SkipLog
) -> list[dict]:
    """One image file under two image ids: with the same annotations again, the repeat is skipped and counted; with
    others, a DataError naming both (which is right, only the user knows; kept apart, they could straddle splits)."""
    by_image: dict = {}
    for a in annotations:
        by_image.setdefault(a["image_id"], []).append(a)
    first: dict[Path, int] = {}
    repeats = set()
    for image_id, group in by_image.items():
        if image_id not in images:
            continue  # an error naming the annotation when its split reads it
        file = image_root / images[image_id]["file_name"]
        other = first.setdefault(file, image_id)
        if other == image_id:
            continue
        if sorted(json.dumps(_flatten(a.get("keypoints") or [])) for a in group) != sorted(
            json.dumps(_flatten(a.get("keypoints") or [])) for a in by_image[other]
        ):
            raise DataError(
                f"{path}: image id {image_id} is {file.name} again, labelled otherwise than under image id {other}: "
                "keep one of the two"
            )
        skips.skip(f"{path}: image id {image_id}: {file.name} repeats image id {other} (same labels)")
        repeats.add(image_id)
    return [a for a in annotations if a["image_id"] not in repeats]


def _flatten(keypoints: list) -> list:
    """x, y, v, x, y, v, ... from the flat COCO list or from a list of triples (as some converters write)."""
    return [v for item in keypoints for v in (item if isinstance(item, list) else [item])]


def _images_by_id(images: list, path: Path) -> dict:
    by_id = {}
    for i, image in enumerate(images):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise DataError(f"{path}: images[{i}] needs an id and a file_name, got {str(image)[:120]}")
        if image["id"] in by_id:
            raise DataError(
                f"{path}: images[{i}] repeats image id {image['id']} ({by_id[image['id']]['file_name']} and "
                f"{image['file_name']}): every image needs its own id"
            )
        by_id[image["id"]] = image
    return by_id


def _size(image: dict) -> tuple[int, int] | None:
    """(width, height) where the image entry gives them as positive numbers."""
    width, height = image.get("width"), image.get("height")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (width, height))
    return (width, height) if ok else None


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(data, dict) or not all(key in data for key in ("images", "annotations", "categories")):
        raise DataError(
            f"{path}: not a COCO-keypoints file (needs a JSON object with images, annotations and categories)"
        )
    return data
