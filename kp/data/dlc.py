"""A DeepLabCut project: its labelled frames as a keypoint dataset.

The project folder holds `config.yaml` (scorer, bodyparts, skeleton) and, per video,
`labeled-data/<video>/CollectedData_<scorer>.csv`: three header rows (scorer / bodyparts / coords), then one row per
frame whose index is the image path relative to the project (one column, or DeepLabCut >= 2.2's three: labeled-data,
video, file), then x, y per body part in pixels; an empty cell is a body part not labelled in that frame. Frames may
differ in size: each is scaled to fit width × height, keeping its aspect ratio, and padded with black.

The single-CSV layout (lightning-pose, and labels exported from DeepLabCut): the folder holds one label file
(`csv_file=CollectedData.csv`, the same three header rows, image paths relative to the folder such as
`labeled-data/img01.png` or `labeled-data/<video>/img01.png`) and no config.yaml; body parts come from its header.

Frames of one video are near-duplicates, so the split is by video (split_by=video; a frame's video is its image's
folder); a project with fewer videos than splits needs split_by=similarity (whole groups of look-alike frames per
split: kp.data.splits.similarity_groups) or split_by=frame (any frame anywhere: optimistic, frames a few milliseconds
apart land on both sides). split_by=auto picks video where there are enough videos for one in every split, else
similarity, and logs which and how many groups it formed.

Bad input (kp.data.io's policy): a missing config or label file, header rows of another shape, or body parts that differ
from config.yaml are a DataError at start; a row with the wrong number of columns, a bad number or a missing image is
skipped and counted in the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import (
    MAX_PIXELS,
    SkipLog,
    check_image_file,
    check_points,
    drop_repeats,
    image_size,
    parse_number,
    read_image,
    where,
)
from kp.data.keypoint_pairs import flip_pairs_from_names, resolve_pairs
from kp.data.splits import choose_groups, deal_or_reuse, similarity_groups
from kp.errors import DataError
from kp.formats import dlc_config, dlc_csv
from kp.geometry import letterbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    image: Path
    keypoints: np.ndarray  # K×2 pixels, 0 where not labelled
    labelled: np.ndarray  # K bool
    video: str


SPLIT_BY = ("video", "similarity", "frame", "auto")


class DeepLabCutProject(KeypointDataset):
    def __init__(
        self,
        split: str,
        project: str,
        width: int = 320,
        height: int = 256,
        split_by: str = "video",
        fractions: Mapping[str, float] | None = None,
        seed: int = 0,
        flip_pairs: list[list] | None = None,
        csv_file: str | None = None,
        splits_from: str | None = None,
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        """project: the folder with config.yaml (or with csv_file). width × height: the size every frame is fitted
        into. split_by: video (whole videos per split), similarity, frame or auto (see the module's doc). flip_pairs:
        [[bodypart, bodypart], ...] instead of the guess from the names. csv_file: the one label file of the
        single-CSV layout, relative to project (body parts from its header; no config.yaml). splits_from: a run
        directory (or its splits.csv): every frame it lists keeps its split there, new frames go to train unless their
        video or look-alikes are held out (kp.data.splits.recorded_split), so a project that grew keeps its test set."""
        super().__init__(transform, max_pixels)
        if split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be video, similarity, frame or auto, got {split_by!r}")
        self.size = self.fit_size = (width, height)
        self.project = project = Path(project)
        label_files, bodyparts, skeleton = _label_files(project, csv_file)
        # The file list with modification times keys the cache: the three splits read the labels once.
        stamp = tuple((path, path.stat().st_mtime_ns) for path in label_files)
        frames, self.issues = _read_frames(project, tuple(bodyparts), stamp, max_pixels)
        # Messages name the label file, or the pattern of the project's label files.
        self.source = str(
            label_files[0] if len(label_files) == 1 else project / "labeled-data" / "*" / label_files[0].name
        )
        if not frames:
            why = f"the first: {self.issues[0]}" if self.issues else "the label files hold only their header rows"
            raise DataError(f"{self.source}: no usable labelled frame ({len(self.issues)} row(s) skipped; {why})")
        fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
        chosen, groups = self._split(frames, split, split_by, fractions, seed, splits_from)
        self.frames, self._groups = [frames[i] for i in chosen], [groups[i] for i in chosen]
        pairs = (
            resolve_pairs(flip_pairs, bodyparts, "flip_pairs")
            if flip_pairs is not None
            else flip_pairs_from_names(bodyparts)
        )
        skeleton = resolve_pairs(skeleton, bodyparts, f"{project / 'config.yaml'} skeleton")
        self.meta = KeypointMeta(names=bodyparts, flip_pairs=pairs, skeleton=skeleton)

    def _split(
        self,
        frames: list[Frame],
        split: str,
        split_by: str,
        fractions: Mapping[str, float],
        seed: int,
        splits_from: str | None,
    ) -> tuple[list[int], list[str]]:
        """(the indices of the split's frames, every frame's group), with one log line (train) on how it split."""
        split_by, groups, why = choose_groups(
            split_by,
            [frame.video for frame in frames],
            lambda: _look_alikes(tuple(frame.image for frame in frames), self.max_pixels),
            [str(frame.image) for frame in frames],
            fractions,
        )
        if split == "train":
            log.info(
                "%s: split by %s: %d group(s) of %d frames%s", self.source, split_by, len(set(groups)), len(frames), why
            )
        of = "samples" if split_by == "similarity" else "groups"  # look-alike groups differ much in size
        names = [self._name(frame) for frame in frames]
        what = f"{self.project} by {split_by}"
        return deal_or_reuse(names, groups, split, fractions, seed, what, of, splits_from, log), groups

    def _name(self, frame: Frame) -> str:
        """The frame's name in splits.csv and messages: its path in the project (labeled-data/<video>/<file>)."""
        return frame.image.relative_to(self.project).as_posix()

    def __len__(self) -> int:
        return len(self.frames)

    def labelled(self) -> np.ndarray:
        return np.array([frame.labelled for frame in self.frames]).reshape(len(self.frames), self.meta.num_keypoints)

    def groups(self) -> list[str]:
        return self._groups

    def image_sources(self) -> list[tuple[str, Path]]:
        return [(self._name(frame), frame.image) for frame in self.frames]

    def load(self, index: int) -> RawSample:
        frame = self.frames[index]
        image, keypoints, affine = letterbox(
            read_image(frame.image, max_pixels=self.max_pixels), frame.keypoints, self.size
        )
        return RawSample(image=image, keypoints=keypoints, visible=frame.labelled, id=str(frame.image), affine=affine)


def _label_files(project: Path, csv_file: str | None) -> tuple[list[Path], list[str], list]:
    """(label files, body parts, skeleton by name): the one csv_file of the single-CSV layout, else config.yaml's
    scorer's CollectedData files under labeled-data/."""
    if csv_file:
        label_file = project / csv_file
        if not label_file.is_file():
            raise DataError(f"{label_file}: not found (data.dataset.csv_file is relative to data.dataset.project)")
        return [label_file], dlc_csv.bodyparts(label_file), []
    config_path = project / "config.yaml"
    scorer, bodyparts, skeleton = dlc_config.read(config_path)
    label_files = sorted((project / "labeled-data").glob(f"*/CollectedData_{scorer}.csv"))
    if not label_files:
        raise DataError(
            f"{project / 'labeled-data'}: no <video>/CollectedData_{scorer}.csv (scorer from {config_path}): label "
            "frames in DeepLabCut first, or name the one label file with data.dataset.csv_file=CollectedData.csv"
        )
    return label_files, bodyparts, skeleton


@functools.lru_cache(maxsize=4)
def _look_alikes(images: tuple[Path, ...], max_pixels: int) -> tuple[str, ...]:
    """similarity_groups of the frames (decoded once for the three splits)."""
    return tuple(similarity_groups(read_image(image, max_pixels=max_pixels) for image in images))


@functools.lru_cache(maxsize=4)
def _read_frames(
    project: Path, bodyparts: tuple[str, ...], stamp: tuple, max_pixels: int
) -> tuple[list[Frame], list[str]]:
    """Every label file's frames; a frame listed again, in its own or another video's label file, is one frame
    (kp.data.io.drop_repeats: the same labels skipped and counted, other labels an error), so that no image can land
    in two splits or twice in one."""
    frames, places, issues = [], [], []
    for csv_path, _ in stamp:
        skips = SkipLog(str(csv_path))
        found, at = _read_label_file(project, csv_path, bodyparts, skips, max_pixels)
        frames, places = frames + found, places + at
        skips.report(log)
        issues += skips.reasons
    skips = SkipLog(str(project))
    kept = drop_repeats(
        [str(f.image) for f in frames],
        [np.where(f.labelled[:, None], f.keypoints, np.nan) for f in frames],
        places,
        skips,
    )
    skips.report(log)
    return [frames[i] for i in kept], issues + skips.reasons


def _read_label_file(
    project: Path, csv_path: Path, bodyparts: tuple[str, ...], skips: SkipLog, max_pixels: int
) -> tuple[list[Frame], list[str]]:
    """The file's usable frames and where each was read (file:line)."""
    table = dlc_csv.read(csv_path)
    if sorted(table.columns) != sorted(bodyparts) or any(len(xy) != 2 for xy in table.columns.values()):
        raise DataError(
            f"{csv_path}: body parts {table.bodyparts} (with x and y each) differ from config.yaml's {list(bodyparts)}"
        )
    width = len(table.header[2])
    frames, places, sizes = [], [], []
    for line, fields in table.rows:
        at = where(csv_path, line)
        try:
            if len(fields) != width:
                raise DataError(f"{at}: {len(fields)} columns, the header has {width}")
            keypoints, labelled = _parse_points(fields, table.columns, bodyparts, at)
            image = project / table.index(fields)
            check_image_file(image, at)
            size = image_size(image, max_pixels)
        except DataError as error:
            skips.skip(str(error))
            continue
        frames.append(Frame(image, keypoints, labelled, image.parent.name))
        places.append(at)
        sizes.append(size)
    points = [np.where(f.labelled[:, None], f.keypoints, np.nan) for f in frames]
    good, labelled = check_points(points, sizes, places, bodyparts, csv_path, skips)
    frames = [Frame(f.image, f.keypoints, mask, f.video) for f, mask, ok in zip(frames, labelled, good) if ok]
    places = [p for p, ok in zip(places, good) if ok]
    return frames, places


def _parse_points(fields: list[str], columns: dict[str, dict[str, int]], bodyparts: tuple[str, ...], at: str):
    keypoints = np.zeros((len(bodyparts), 2), np.float32)
    labelled = np.zeros(len(bodyparts), bool)
    for k, part in enumerate(bodyparts):
        x, y = fields[columns[part]["x"]].strip(), fields[columns[part]["y"]].strip()
        if not x and not y:
            continue  # not labelled in this frame
        if not x or not y:
            raise DataError(f"{at}: {part} has only one of x and y")
        keypoints[k] = parse_number(x, at, f"{part} x"), parse_number(y, at, f"{part} y")
        labelled[k] = True
    return keypoints, labelled
