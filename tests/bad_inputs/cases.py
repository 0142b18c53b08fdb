"""Broken and unusual inputs for every loader and for checkpoints, built on the fly (no binary blobs committed).

Every case writes a small dataset (or checkpoint) into a folder and says what kp must do with it:
  error   a one-line DataError / ModelLoadError whose message names the file (and holds `match`);
  skip    the loader reads it, skipping `n` samples, each counted in `dataset.issues` with its file;
  accept  the loader reads it with nothing skipped, and the first sample's keypoints, taken back to the source image
          through the sample's affine, are the ones written.

`python -m tests.bad_inputs.cases OUT` writes every case into OUT/<case>/ to look at; tests/test_bad_inputs.py checks
each one. The kinds (docs/reliability.md) are the KINDS below, for every loader in FORMATS, plus CHECKPOINT_KINDS.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from kp.data.cards import POINTS as CARD_POINTS
from kp.data.cards import CardPacks
from kp.data.cat import ALL_NAMES as CAT_NAMES
from kp.data.cat import CatHeads
from kp.data.coco import CocoKeypoints
from kp.data.dlc import DeepLabCutProject
from kp.data.facial import NAMES as FACIAL_NAMES
from kp.data.facial import FacialKeypoints
from kp.data.facial68 import Facial68
from kp.data.splits import SPLITS
from kp.geometry import apply, invert

N = 4  # samples per dataset: 2 train, 1 val, 1 test when split by fractions


@dataclass
class Labels:
    """What a format writer gets: per sample an image (H×W×3 uint8), its name, keypoints K×2 (NaN: unlabelled)."""

    images: list[np.ndarray]
    names: list[str]
    points: np.ndarray


def make_labels(width: int, height: int, k: int, seed: int = 0) -> Labels:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(N)]
    points = np.round(rng.uniform([2, 2], [width - 3, height - 3], (N, k, 2)), 2)
    return Labels(images, [f"p{i}_01.png" for i in range(N)], points)


def _num(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:g}"


class Format:
    """One loader: how to write Labels as its files, which file holds the labels, and how to read it back."""

    name: str
    size: tuple[int, int]  # (width, height) of the written images
    k: int
    header_lines = 1  # label-file lines before the first sample
    value_cell = 1  # the CSV cell of a sample's first coordinate

    def write(self, root: Path, labels: Labels) -> None:
        raise NotImplementedError

    def label_file(self, root: Path) -> Path:
        raise NotImplementedError

    def open(self, root: Path, split: str = "train", fractions=(1.0, 0.0, 0.0), **options):
        raise NotImplementedError

    def _images(self, folder: Path, labels: Labels) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for image, name in zip(labels.images, labels.names):
            cv2.imwrite(str(folder / name), image)


class Facial(Format):
    name, size, k = "facial", (96, 96), 15

    def write(self, root, labels):
        root.mkdir(parents=True, exist_ok=True)
        header = [f"{n}_{a}" for n in FACIAL_NAMES for a in "xy"] + ["Image"]
        rows = [",".join(header)]
        for image, points in zip(labels.images, labels.points):
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            rows.append(",".join([_num(v) for v in points.ravel()] + [" ".join(map(str, grey.ravel()))]))
        self.label_file(root).write_text("\n".join(rows) + "\n")

    def label_file(self, root):
        return root / "training.csv"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return FacialKeypoints(
            split,
            root,
            subset="all",
            val_fraction=fractions[1],
            test_fraction=fractions[2],
            cache_dir=root / "cache",
            split_by="row",  # the cases' images may look alike (the same image twice): rows, so that a leak can happen
            **options,
        )


class Faces68(Format):
    name, size, k = "facial68", (40, 32), 68

    def write(self, root, labels):
        self._images(root / "images", labels)
        rows = ["," + ",".join(str(i) for i in range(2 * self.k))]
        rows += [
            ",".join([name] + [_num(v) for v in points.ravel()]) for name, points in zip(labels.names, labels.points)
        ]
        self.label_file(root).write_text("\n".join(rows) + "\n")

    def label_file(self, root):
        return root / "keypoints.csv"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return Facial68(split, root, val_fraction=fractions[1], test_fraction=fractions[2], **options)


class Cards(Format):
    name, size, k = "cards", (40, 32), 8
    value_cell = 6  # after imageName, annotated, cards_counted, total_cards, videoId and the first visible flag

    def write(self, root, labels):
        self._images(root / "images", labels)
        header = (
            ["imageName", "annotated", "cards_counted", "total_cards", "videoId"]
            + [f"{p}_{part}" for p in CARD_POINTS for part in ("visible", "x", "y")]
            + ["mask"]
        )
        rows = [",".join(header)]
        width, height = self.size
        for i, (name, points) in enumerate(zip(labels.names, labels.points)):
            cells = [name, "1", "20", "52", f"video{i}"]
            for x, y in points:  # the quirk: <pt>_x is row / height, <pt>_y column / width
                labelled = np.isfinite(x)
                cells += ["1", _num((y + 0.5) / height), _num((x + 0.5) / width)] if labelled else ["0", "0", "0"]
            rows.append(",".join(cells + [""]))
        self.label_file(root).write_text("\n".join(rows) + "\n")

    def label_file(self, root):
        return root / "cardpoints.csv"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return CardPacks(
            split, str(root), width=40, height=32, fractions=dict(zip(("train", "val", "test"), fractions)), **options
        )


class Cat(Format):
    name, size, k = "cat", (40, 32), 9
    header_lines = 0

    def write(self, root, labels):
        labels.names = [name.replace(".png", ".jpg") for name in labels.names]
        folder = root / "CAT_00"
        folder.mkdir(parents=True, exist_ok=True)
        for image, name, points in zip(labels.images, labels.names, labels.points):
            cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (folder / f"{name}.cat").write_text("9 " + " ".join(_num(v) for v in points.ravel()) + " ")

    def label_file(self, root):
        return root / "CAT_00" / "p0_01.jpg.cat"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return CatHeads(
            split,
            root,
            keypoints=CAT_NAMES,
            preprocess="none",
            fractions=list(fractions),
            **{"folders": ["CAT_00"], **options},
        )


PARTS = ["nose", "left_paw", "right_paw"]


class Dlc(Format):
    name, size, k = "dlc", (40, 32), 3
    header_lines = 3

    def rows(self, labels, prefix):
        rows = [
            "scorer," + ",".join(["Ann"] * 2 * self.k),
            "bodyparts," + ",".join(p for p in PARTS for _ in "xy"),
            "coords," + ",".join(["x", "y"] * self.k),
        ]
        rows += [
            ",".join([f"{prefix}{name}"] + [_num(v) for v in points.ravel()])
            for name, points in zip(labels.names, labels.points)
        ]
        return "\n".join(rows) + "\n"

    def write(self, root, labels):
        self._images(root / "labeled-data" / "v1", labels)
        (root / "config.yaml").write_text(yaml.safe_dump({"scorer": "Ann", "bodyparts": PARTS}))
        self.label_file(root).write_text(self.rows(labels, "labeled-data/v1/"))

    def label_file(self, root):
        return root / "labeled-data" / "v1" / "CollectedData_Ann.csv"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return DeepLabCutProject(
            split,
            str(root),
            width=40,
            height=32,
            split_by="frame",
            fractions=dict(zip(("train", "val", "test"), fractions)),
            **options,
        )


class DlcSingle(Dlc):
    """The single-CSV layout: one CollectedData.csv beside labeled-data/, no config.yaml."""

    name = "dlc_single"

    def write(self, root, labels):
        self._images(root / "labeled-data" / "v1", labels)
        self.label_file(root).write_text(self.rows(labels, "labeled-data/v1/"))

    def label_file(self, root):
        return root / "CollectedData.csv"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return super().open(root, split, fractions, csv_file="CollectedData.csv", **options)


class Coco(Format):
    name, size, k = "coco", (40, 32), 3
    header_lines = 0

    def write(self, root, labels):
        self._images(root, labels)
        images = [
            {"id": i + 1, "file_name": name, "width": self.size[0], "height": self.size[1]}
            for i, name in enumerate(labels.names)
        ]
        annotations = []
        for i, points in enumerate(labels.points):
            labelled = np.isfinite(points).all(axis=1)
            triples = [[float(x), float(y), 2] if ok else [0, 0, 0] for (x, y), ok in zip(points, labelled)]
            annotations.append(
                {
                    "id": 100 + i,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": [1, 1, 30, 20],
                    "keypoints": [v for t in triples for v in t],
                }
            )
        data = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "mouse", "keypoints": PARTS, "skeleton": [[1, 2]]}],
        }
        self.label_file(root).write_text(json.dumps(data, indent=1))

    def label_file(self, root):
        return root / "ann.json"

    def open(self, root, split="train", fractions=(1.0, 0.0, 0.0), **options):
        return CocoKeypoints(
            split,
            str(self.label_file(root)),
            size=32,
            fractions=dict(zip(("train", "val", "test"), fractions)),
            **options,
        )


FORMATS = {f.name: f for f in (Facial(), Faces68(), Cards(), Cat(), Dlc(), DlcSingle(), Coco())}


@dataclass
class Case:
    name: str
    fmt: Format
    kind: str
    expect: str  # error | skip | accept
    match: str = ""  # error: a part of the message; the label file's name is always required
    n: int = 0  # skip: how many
    names: str = ""  # error: the file (and row) the message must name, where the label file or folder is not enough
    labels: Labels | None = None
    build: Callable[[Path], None] | None = None
    open: Callable[[Path], object] | None = None


# --- label-file text edits --------------------------------------------------------------------------------------------


def _edit_text(fmt: Format, change: Callable[[str], str | bytes]):
    def edit(root: Path):
        path = fmt.label_file(root)
        new = change(path.read_text())
        path.write_bytes(new if isinstance(new, bytes) else new.encode())

    return edit


def _edit_line(fmt: Format, sample: int, change: Callable[[str], str]):
    """Change the text line of one sample (for cat: its .cat file; for COCO: no lines, so not used)."""

    def change_text(text: str) -> str:
        lines = text.split("\n")
        index = 0 if fmt.name == "cat" else fmt.header_lines + sample  # a .cat file is one sample's one line
        lines[index] = change(lines[index])
        return "\n".join(lines)

    return change_text


def _replace_value(fmt: Format, line: str, value: str) -> str:
    """The line with its first coordinate replaced by `value`."""
    if fmt.name == "cat":  # `9 x1 y1 ...`
        tokens = line.split()
        return " ".join([tokens[0], value, *tokens[2:]])
    cells = line.split(",")
    cells[fmt.value_cell] = value
    return ",".join(cells)


def _coco_edit(change: Callable[[dict], None]):
    def edit(root: Path):
        path = FORMATS["coco"].label_file(root)
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return edit


def _big_png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header says width × height, with a tiny (invalid) body: the size limit must refuse it unread."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# --- the kinds
# ----------------------------------------------------------------------------------------------------------
# Each kind: (labels edit before writing, file edit after writing, expected outcome, match/n, formats it applies to).

ALL = tuple(FORMATS)
CSV = ("facial", "facial68", "cards", "dlc", "dlc_single")


def _points(change: Callable[[np.ndarray, Format], None]):
    return lambda labels, fmt: change(labels.points, fmt)


def _kinds() -> dict[str, tuple]:
    def scale(factor):
        def change(points, fmt):
            points *= factor

        return change

    def normalise(points, fmt):
        points /= np.array(fmt.size)

    def far(points, fmt):
        points[1, 0] = (fmt.size[0] * 5, fmt.size[1] * 5)

    def enormous(points, fmt):
        points[1, 0] = (1e30, 1e30)

    def unlabel_one(points, fmt):
        points[0, 0] = np.nan

    def negative(points, fmt):
        points[1, 0] = (-3, 5)

    def unicode_name(labels, fmt):
        labels.names[0] = "pé0_01.png" if fmt.name != "cat" else labels.names[0]

    def upper_ext(labels, fmt):
        labels.names[0] = "p0_01.PNG"

    k = {
        # name: (labels edit, file edit(fmt) -> fn(root), expect, match or n, formats)
        "valid": (None, None, "accept", "", ALL),
        "utf8_bom": (None, lambda f: _edit_text(f, lambda t: "\ufeff" + t), "accept", "", ALL),
        "crlf_line_ends": (None, lambda f: _edit_text(f, lambda t: t.replace("\n", "\r\n")), "accept", "", ALL),
        "trailing_blank_lines": (None, lambda f: _edit_text(f, lambda t: t + "\n\n\n"), "accept", "", ALL),
        "unicode_file_name": (unicode_name, None, "accept", "", ("facial68", "cards", "dlc", "dlc_single", "coco")),
        "upper_case_extension": (upper_ext, None, "accept", "", ("facial68", "cards", "dlc", "dlc_single", "coco")),
        "latin1_encoding": (
            None,
            lambda f: _edit_text(
                f,
                lambda t: (t.replace("\n", ",é\n", 1) if f.name not in ("cat", "coco") else t + " é").encode("cp1252"),
            ),
            "error",
            "CP1252",
            tuple(n for n in ALL if n != "cat"),
        ),
        "utf16_encoding": (
            None,
            lambda f: _edit_text(f, lambda t: t.encode("utf-16")),
            "error",
            "UTF-16",
            tuple(n for n in ALL if n != "cat"),
        ),
        "empty_file": (None, lambda f: _edit_text(f, lambda t: ""), "error", "", tuple(n for n in ALL if n != "cat")),
        "stray_quote": (
            None,
            lambda f: _edit_text(f, _edit_line(f, 1, lambda line: line.replace(",", ',"', 1))),
            "error",
            "quote",
            CSV,
        ),
        "huge_field": (
            None,
            lambda f: _edit_text(f, _edit_line(f, 1, lambda line: line + "," + "9" * 200_000)),
            "skip",
            1,
            CSV,
        ),
        "nul_byte": (
            None,
            lambda f: _edit_text(f, _edit_line(f, 1, lambda line: line.replace(",", ",\0", 1))),
            "error",
            "NUL",
            CSV,
        ),
        "non_numeric_coordinate": (
            None,
            lambda f: _edit_text(f, _edit_line(f, 1, lambda line: _replace_value(f, line, "abc"))),
            "skip",
            1,
            ("facial", "facial68", "cards", "dlc", "dlc_single", "cat"),
        ),
        "infinite_coordinate": (
            None,
            lambda f: _edit_text(f, _edit_line(f, 1, lambda line: _replace_value(f, line, "inf"))),
            "skip",
            1,
            ("facial", "facial68", "cards", "dlc", "dlc_single", "cat"),
        ),
        "missing_column": (
            None,
            lambda f: _edit_text(f, _edit_line(f, 1, lambda line: line.rsplit(",", 1)[0])),
            "skip",
            1,
            CSV,
        ),
        "extra_column": (None, lambda f: _edit_text(f, _edit_line(f, 1, lambda line: line + ",7")), "skip", 1, CSV),
        "normalised_coordinates": (
            _points(normalise),
            None,
            "error",
            "normalised",
            ("facial", "facial68", "cat", "dlc", "dlc_single", "coco"),
        ),
        "coordinates_times_100": (
            _points(scale(100)),
            None,
            "error",
            "scaled",
            ("facial", "facial68", "cat", "dlc", "dlc_single", "coco"),
        ),
        "point_far_outside": (
            _points(far),
            None,
            "skip",
            1,
            ("facial", "facial68", "cat", "dlc", "dlc_single", "coco"),
        ),
        "enormous_coordinate": (
            _points(enormous),
            None,
            "skip",
            1,
            ("facial", "facial68", "cat", "dlc", "dlc_single", "coco"),
        ),
        "one_point_unlabelled": (
            _points(unlabel_one),
            None,
            "accept",
            "",
            ("facial", "cards", "dlc", "dlc_single", "coco"),
        ),
        "repeated_row_same_labels": (
            None,
            lambda f: _edit_text(
                f, lambda t: t.rstrip("\n") + "\n" + t.rstrip("\n").split("\n")[f.header_lines + 1] + "\n"
            ),
            "skip",
            1,
            ("facial", "facial68", "cards", "dlc", "dlc_single"),
        ),
        "repeated_row_other_labels": (
            None,
            lambda f: _edit_text(
                f,
                lambda t: (
                    t.rstrip("\n")
                    + "\n"
                    + _replace_value(f, t.rstrip("\n").split("\n")[f.header_lines + 1], "0.5")
                    + "\n"
                ),
            ),
            "error",
            "labelled again",
            ("facial", "facial68", "cards", "dlc", "dlc_single"),
        ),
        "missing_image": (
            None,
            lambda f: lambda root: _first_image(f, root).unlink(),
            "skip",
            1,
            ("facial68", "cards", "dlc", "dlc_single", "coco"),
        ),
        # loaders that read each image's size at start skip it, counted; the others stop when they load it
        "corrupt_image_found_at_start": (
            None,
            _image_bytes(b"\x89PNG\r\n\x1a\nbroken"),
            "skip",
            1,
            ("facial68", "cat", "dlc", "dlc_single"),
        ),
        "corrupt_image_found_at_load": (
            None,
            _image_bytes(b"\x89PNG\r\n\x1a\nbroken"),
            "error",
            "corrupt",
            ("cards", "coco"),
        ),
        "image_above_size_limit_at_start": (
            None,
            lambda f: lambda root: _big_png_header(_first_image(f, root), 200_000, 100_000),
            "skip",
            1,
            ("facial68", "dlc", "dlc_single"),
        ),
        "image_above_size_limit_at_load": (
            None,
            lambda f: lambda root: _big_png_header(_first_image(f, root), 200_000, 100_000),
            "error",
            "megapixels",
            ("cards", "coco"),
        ),
        # images that cannot be decoded: those whose header already fails are skipped where a loader reads every
        # image's size at start (cat, dlc); the rest stop at load with the image named (in a DataLoader worker too)
        "truncated_image": (
            None,
            lambda f: lambda root: _truncate(_first_image(f, root)),
            "error",
            "corrupt",
            ("cards", "coco", "cat", "dlc", "dlc_single"),
        ),
        "random_bytes_image_at_load": (
            None,
            _image_bytes(np.random.default_rng(1).bytes(3000)),
            "error",
            "corrupt",
            ("cards", "coco"),
        ),
        "random_bytes_image_at_start": (
            None,
            _image_bytes(np.random.default_rng(1).bytes(3000)),
            "skip",
            1,
            ("cat", "dlc", "dlc_single", "facial68"),
        ),
        "zero_byte_image_at_load": (
            None,
            _image_bytes(b""),
            "error",
            "corrupt",
            ("cards", "coco"),
        ),
        "zero_byte_image_at_start": (
            None,
            _image_bytes(b""),
            "skip",
            1,
            ("cat", "dlc", "dlc_single", "facial68"),
        ),
        "decompression_bomb_header": (
            None,
            lambda f: lambda root: _big_png_header(_first_image(f, root), 60_000, 60_000),
            "skip",
            1,
            ("cat",),
        ),
        # a label row naming an image whose name the file system refuses (300 characters): one bad row, skipped
        "file_name_too_long": (
            None,
            lambda f: _edit_text(f, lambda t: t.replace("p0_01.png", "x" * 296 + ".png", 1)),
            "skip",
            1,
            ("facial68", "cards", "dlc", "dlc_single", "coco"),
        ),
        # a point just beyond the image's edge (a -1 written for "missing"): left out of the labels, counted
        "negative_coordinate": (
            _points(negative),
            None,
            "skip",
            1,
            ("facial", "facial68", "cat", "dlc", "dlc_single", "coco"),
        ),
    }
    return k


def _image_bytes(data: bytes):
    """The file edit that gives the first image these bytes."""
    return lambda f: lambda root: _first_image(f, root).write_bytes(data)


def _truncate(path: Path) -> None:
    """The image cut off half-way, as by an interrupted copy: its header still reads."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _first_image(fmt: Format, root: Path) -> Path:
    sub = {
        "facial68": "images",
        "cards": "images",
        "cat": "CAT_00",
        "dlc": "labeled-data/v1",
        "dlc_single": "labeled-data/v1",
        "coco": ".",
    }[fmt.name]
    return sorted((root / sub).glob("p0_*.[pjPJ][npNP][gG]"))[0]


def _special_cases() -> list[Case]:
    """Kinds that belong to one format, or that need the three splits (datamodule checks)."""
    coco, cat = FORMATS["coco"], FORMATS["cat"]
    cases = []

    def coco_case(name, change, expect, match="", n=0):
        cases.append(Case(f"coco-{name}", coco, name, expect, match, n, build=lambda root: _coco_edit(change)(root)))

    coco_case("annotation_without_image_id", lambda d: d["annotations"][1].pop("image_id"), "error", "image_id")
    coco_case("annotation_without_id", lambda d: d["annotations"][1].pop("id"), "error", "id")
    coco_case("image_without_file_name", lambda d: d["images"][1].pop("file_name"), "error", "file_name")
    coco_case("image_without_id", lambda d: d["images"][1].pop("id"), "error", "id")
    coco_case("duplicated_image_id", lambda d: d["images"][1].update(id=1), "error", "repeats image id")
    coco_case("unknown_image_id", lambda d: d["annotations"][1].update(image_id=99), "error", "image_id 99")
    coco_case("visibility_flag_3", lambda d: d["annotations"][1]["keypoints"].__setitem__(2, 3), "skip", n=1)
    coco_case("keypoint_as_string", lambda d: d["annotations"][1]["keypoints"].__setitem__(0, "12"), "skip", n=1)
    coco_case(
        "wrong_keypoint_count", lambda d: d["annotations"][1]["keypoints"].extend([1, 1, 2]), "error", "keypoint values"
    )
    coco_case("not_coco", lambda d: d.pop("categories"), "error", "not a COCO")
    coco_case("category_without_id", lambda d: d["categories"][0].pop("id"), "error", "needs an id")
    coco_case("crowd_annotation", lambda d: d["annotations"][1].update(iscrowd=1), "accept")
    coco_case("bbox_missing", lambda d: d["annotations"][0].pop("bbox"), "accept")
    coco_case("bbox_garbage", lambda d: d["annotations"][0].update(bbox="wide"), "accept")
    coco_case(
        "all_unlabelled",
        lambda d: [a.update(keypoints=[0] * 9) for a in d["annotations"]],
        "error",
        "no usable annotation",
    )
    coco_case(  # the image's own header gives its size
        "far_point_without_image_size",
        lambda d: [d["images"][1].pop("width"), d["annotations"][1]["keypoints"].__setitem__(0, 1e7)],
        "skip",
        n=1,
    )

    def repeat_image(data, keypoints=None):
        """Image 1's file under a new image id, with a copy of its annotation (other keypoints where given)."""
        data["images"].append({**data["images"][0], "id": 9})
        again = {**data["annotations"][0], "id": 900, "image_id": 9}
        if keypoints is not None:
            again["keypoints"] = keypoints
        data["annotations"].append(again)

    coco_case("image_listed_twice_same_labels", repeat_image, "skip", n=1)
    coco_case(
        "image_listed_twice_other_labels", lambda d: repeat_image(d, [5, 5, 2] * 3), "error", "labelled otherwise"
    )

    def other_category(data):
        data["categories"].append({"id": 2, "name": "car"})
        data["annotations"].append({**data["annotations"][0], "id": 901, "category_id": 2})

    coco_case("annotation_of_another_category", other_category, "skip", n=1)
    coco_case(
        "annotation_of_an_unknown_category",
        lambda d: d["annotations"][1].update(category_id=7),
        "error",
        "not in categories",
    )

    def corrupt_cache(root):
        facial = FORMATS["facial"]
        facial.open(root)  # parses training.csv once into the cache
        for cached in (root / "cache").rglob("*.npz"):
            cached.write_bytes(cached.read_bytes()[:100])  # cut off, as by a full disk
        label = facial.label_file(root)
        stat = label.stat()
        os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))  # a new process would not remember the parse

    cases.append(
        Case(
            "cards-coordinates_not_fractions",
            FORMATS["cards"],
            "coordinates_not_fractions",
            "error",
            "fractions of the image size",
            labels=lambda labels, fmt: np.multiply(labels.points, 100, out=labels.points),
        )
    )
    cases.append(
        Case("facial-corrupt_parse_cache", FORMATS["facial"], "corrupt_parse_cache", "accept", build=corrupt_cache)
    )
    cases.append(
        Case(
            "facial-cache_dir_is_a_file",
            FORMATS["facial"],
            "cache_dir_is_a_file",
            "error",
            "data.dataset.cache_dir",
            build=lambda root: (root / "cache").write_text("not a folder"),
        )
    )

    def cat_case(name, edit, expect, match="", n=0):
        cases.append(Case(f"cat-{name}", cat, name, expect, match, n, build=edit))

    folder = lambda root: root / "CAT_00"
    cat_case(
        "upper_case_JPG",
        lambda root: [p.rename(p.with_name(p.name.replace(".jpg", ".JPG"))) for p in folder(root).glob("p0_01.jpg*")],
        "accept",
    )
    cat_case(
        "jpeg_extension",
        lambda root: [p.rename(p.with_name(p.name.replace(".jpg", ".jpeg"))) for p in folder(root).glob("p0_01.jpg*")],
        "accept",
    )
    cat_case("label_without_image", lambda root: (folder(root) / "p1_01.jpg").unlink(), "skip", n=1)
    cat_case("image_without_label", lambda root: (folder(root) / "p1_01.jpg.cat").unlink(), "skip", n=1)
    cat_case("stray_file", lambda root: (folder(root) / "notes.txt").write_text("hi"), "skip", n=1)
    cat_case("wrong_count", lambda root: (folder(root) / "p1_01.jpg.cat").write_text("8 1 2"), "skip", n=1)
    cat_case(
        "latin1_label", lambda root: (folder(root) / "p1_01.jpg.cat").write_bytes("9 é".encode("cp1252")), "skip", n=1
    )
    cat_case("empty_label", lambda root: (folder(root) / "p1_01.jpg.cat").write_text(""), "skip", n=1)

    def in_two_folders(change=None):
        """p0_01.jpg copied into CAT_01 with its label (changed where asked), both folders read."""

        def build(root):
            (root / "CAT_01").mkdir()
            shutil.copy(folder(root) / "p0_01.jpg", root / "CAT_01" / "p0_01.jpg")
            label = (folder(root) / "p0_01.jpg.cat").read_text()
            (root / "CAT_01" / "p0_01.jpg.cat").write_text(change(label) if change else label)

        return build

    two_folders = lambda root: cat.open(root, folders=["CAT_00", "CAT_01"])
    cases.append(
        Case(
            "cat-image_in_two_folders_same_labels",
            cat,
            "image_in_two_folders",
            "skip",
            n=1,
            build=in_two_folders(),
            open=two_folders,
        )
    )
    cases.append(
        Case(
            "cat-image_in_two_folders_other_labels",
            cat,
            "image_in_two_folders",
            "error",
            "labelled again",
            build=in_two_folders(lambda text: _replace_value(cat, text, "1.5")),
            open=two_folders,
            names="p0_01.jpg.cat",
        )
    )
    return cases


def _split_cases() -> list[Case]:
    """Checks across the three splits, through the datamodule: every split needs a labelled keypoint, and the same
    image in two splits is a leak (an error unless allow_leaks)."""
    cases = []
    for name, fmt in FORMATS.items():

        def open_dm(root, fmt=fmt, **options):
            return _open_dm(fmt, root, **options)

        if name != "cat":

            def unlabelled(labels, fmt):
                labels.points[:] = np.nan

            match = {"coco": "no usable annotation", "facial68": "is empty"}.get(name, "labelled")  # rows refused
            cases.append(
                Case(
                    f"{name}-every_keypoint_unlabelled",
                    fmt,
                    "every_keypoint_unlabelled",
                    "error",
                    match,
                    labels=unlabelled,
                    open=open_dm,
                    names=fmt.label_file(Path()).name,
                )
            )

        def same_images(labels, fmt):
            labels.images[:] = [labels.images[0]] * N

        # facial rows have no names: rows of the same pixels are one image labelled again, whatever the split
        leak = ("error", "labelled again") if name == "facial" else ("error", "more than one split")
        allowed = ("error", "labelled again") if name == "facial" else ("accept", "")
        cases.append(
            Case(
                f"{name}-same_image_in_two_splits",
                fmt,
                "same_image_in_two_splits",
                *leak,
                labels=same_images,
                open=open_dm,
                names=fmt.label_file(Path()).name if name != "cat" else "",
            )
        )
        cases.append(
            Case(
                f"{name}-same_image_in_two_splits_allowed",
                fmt,
                "same_image_in_two_splits_allowed",
                *allowed,
                labels=same_images,
                open=lambda root, o=open_dm: o(root, allow_leaks=True),
            )
        )
        if name in ("dlc", "dlc_single"):
            cases.append(
                Case(
                    f"{name}-header_only",
                    fmt,
                    "header_only",
                    "error",
                    "only their header rows",
                    build=_edit_text(fmt, lambda t: "\n".join(t.split("\n")[:3]) + "\n"),
                    open=open_dm,
                    names=fmt.label_file(Path()).name,
                )
            )
            cases.append(
                Case(
                    f"{name}-every_row_skipped",
                    fmt,
                    "every_row_skipped",
                    "error",
                    "no usable labelled frame",
                    build=_images_gone,
                    open=open_dm,
                    names=fmt.label_file(Path()).name,
                )
            )

    cat = FORMATS["cat"]
    cases.append(
        Case(
            "cat-every_label_broken",
            cat,
            "every_label_broken",
            "error",
            "split is empty",
            build=lambda root: [label.write_text("8 1 2") for label in (root / "CAT_00").glob("*.cat")],
            open=lambda root: _open_dm(cat, root),
            names="jpg.cat",
        )
    )

    def same_file_for_every_split(root):
        path = FORMATS["coco"].label_file(root)
        return _open_dm(
            FORMATS["coco"], root, open=lambda split: CocoKeypoints(split, {s: str(path) for s in SPLITS}, size=32)
        )

    cases.append(
        Case(
            "coco-same_file_for_every_split",
            FORMATS["coco"],
            "same_file_for_every_split",
            "error",
            "more than one split",
            open=same_file_for_every_split,
            names="ann.json",
        )
    )
    return cases


def _images_gone(root: Path) -> None:
    """Every image of the DeepLabCut set deleted, its labels left."""
    for image in (root / "labeled-data" / "v1").glob("*.png"):
        image.unlink()


def _open_dm(fmt: Format, root: Path, open=None, **options):
    """The training split as the datamodule sets it up (every check across splits applied)."""
    from kp.data.datamodule import KeypointDataModule

    open = open or (lambda split: fmt.open(root, split, (0.5, 0.25, 0.25)))
    dm = KeypointDataModule(lambda split, transform, max_pixels: open(split), **options)
    dm.setup()
    return dm.splits["train"]


def cases() -> list[Case]:
    out = []
    for kind, (labels_edit, file_edit, expect, match, formats) in _kinds().items():
        for name in formats:
            fmt = FORMATS[name]
            out.append(
                Case(
                    f"{name}-{kind}",
                    fmt,
                    kind,
                    expect,
                    match if expect == "error" else "",
                    match if expect == "skip" else 0,
                    labels=labels_edit,
                    build=file_edit(fmt) if file_edit else None,
                    # a CAT set has a label file per image: a units error names the first one that shows it
                    names="p0_01.jpg.cat" if name == "cat" and kind in UNITS else "",
                )
            )
    return out + _special_cases() + _split_cases()


UNITS = ("normalised_coordinates", "coordinates_times_100")


CASES_BY_NAME = {case.name: case for case in cases()}


def build(case: Case, root: Path) -> Labels:
    """Write the case into root; returns the labels as written (before any file edit)."""
    fmt = case.fmt
    labels = make_labels(*fmt.size, fmt.k)
    if case.labels is not None:
        case.labels(labels, fmt)
    fmt.write(root, labels)
    if case.build is not None:
        case.build(root)
    return labels


def open_case(case: Case, root: Path):
    return case.open(root) if case.open is not None else case.fmt.open(root)


def source_points(dataset, index: int) -> np.ndarray:
    """A sample's keypoints taken back to its source image's pixels (NaN where not visible)."""
    raw = dataset.load(index)
    points = np.asarray(raw.keypoints, np.float64)
    if raw.affine is not None:
        points = apply(invert(np.asarray(raw.affine, np.float64)), points)
    return np.where(np.asarray(raw.visible)[:, None], points, np.nan)


if __name__ == "__main__":
    from tests.bad_inputs import checkpoints

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    for case in cases():
        shutil.rmtree(out / case.name, ignore_errors=True)
        build(case, out / case.name)
    for kind, (make, _, _) in checkpoints.KINDS.items():
        shutil.rmtree(out / f"checkpoint-{kind}", ignore_errors=True)
        (out / f"checkpoint-{kind}").mkdir(parents=True)
        make(out / f"checkpoint-{kind}")
    print(f"{len(cases())} data cases and {len(checkpoints.KINDS)} checkpoints written to {out}/")
    from tests.bad_inputs import commands

    runs = {name: len(getattr(commands, name.upper())) for name in ("preview", "doctor", "train", "evaluate")}
    print("cases run through the commands:", ", ".join(f"kp {name} {n}" for name, n in runs.items()))
