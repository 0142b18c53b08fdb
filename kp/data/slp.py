"""A SLEAP project (`.slp`, read by sleap-io): its user-labelled frames as a keypoint dataset, one animal per frame.

The labels file holds the skeleton (node names, edges, symmetries), the videos and, per labelled frame, its instances.
Only the instances a person labelled count (SLEAP's predicted instances are a model's guesses, not labels); a node
marked not visible is unlabelled. The images come from each frame's video through sleap-io: a video file, an image
list, or frames embedded in the `.slp` itself (`sio.save_slp(labels, path, embed="user")`, what SLEAP's "export
training package" writes). A video that is not where the `.slp` says is looked for beside the `.slp`; one found in
neither place leaves its frames out, counted in the log. Frames may differ in size: each is scaled to fit width ×
height, keeping its aspect ratio, and padded with black (as kp.data.dlc does).

One animal per frame: a frame with several labelled instances is a DataError naming the file, the video and the frame,
unless `instances=first` takes each frame's first labelled instance (the other animals in the image then stay
unlabelled, which teaches the model that they are background: meant for the odd frame with a second animal passing by,
not for multi-animal projects).

Flip pairs: the skeleton's symmetries where it has some, else guessed from the node names, or `flip_pairs` as given.
The split (split_by) is the DeepLabCut loader's: whole videos per split, or whole groups of look-alike frames, or
single frames; auto takes videos where there are enough for one in every split.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.io import MAX_PIXELS, SkipLog, check_image_file, check_points, drop_repeats, image_size, read_image
from kp.data.keypoint_pairs import flip_pairs_from_names, resolve_pairs
from kp.data.splits import choose_groups, deal_or_reuse, similarity_groups
from kp.errors import ConfigError, DataError
from kp.geometry import letterbox

log = logging.getLogger(__name__)
INSTANCES = ("one", "first")


def sleap_io():
    """The sleap_io module, or a one-line error naming the extra that installs it."""
    try:
        import sleap_io
    except ImportError:
        raise ConfigError('SLEAP files need sleap-io: pip install -e ".[formats]"') from None
    return sleap_io


@dataclass(frozen=True)
class Frame:
    video: int  # index into the project's videos
    index: int  # the frame's index in its video
    name: str  # where it comes from: its image file, or `<video> frame <index>`
    image: Path | None  # its image file, where the video is a list of images; None: decoded through sleap-io
    keypoints: np.ndarray  # K×2 pixels, NaN where not labelled


class SleapLabels(KeypointDataset):
    def __init__(
        self,
        split: str,
        path: str,
        width: int = 320,
        height: int = 256,
        split_by: str = "auto",
        fractions: Mapping[str, float] | None = None,
        seed: int = 0,
        flip_pairs: list[list] | None = None,
        instances: str = "one",
        splits_from: str | None = None,
        transform=None,
        max_pixels: int = MAX_PIXELS,
    ):
        """path: the .slp file. width × height: the size every frame is fitted into. split_by: video, similarity,
        frame or auto (see kp.data.dlc). flip_pairs: [[node, node], ...] instead of the skeleton's symmetries.
        instances: one (a frame with several labelled instances is an error) or first (take the first).
        splits_from: a run directory (or its splits.csv) whose split the frames keep (see kp.data.dlc)."""
        super().__init__(transform, max_pixels)
        if split_by not in ("video", "similarity", "frame", "auto"):
            raise ValueError(f"split_by must be video, similarity, frame or auto, got {split_by!r}")
        if instances not in INSTANCES:
            raise ConfigError(f"data.dataset.instances must be one of {', '.join(INSTANCES)}, got {instances!r}")
        self.size = self.fit_size = (width, height)
        self.source = str(path)
        if not Path(path).is_file():
            raise DataError(f"{path}: not found: set data.dataset.path to your SLEAP labels file (.slp)")
        project = _read_project(Path(path), instances, Path(path).stat().st_mtime_ns, max_pixels)
        self.videos, names, self.issues = project.videos, project.names, project.issues
        if not project.frames:
            why = f"the first: {self.issues[0]}" if self.issues else "it has no frame labelled by a person"
            raise DataError(f"{path}: no usable labelled frame ({len(self.issues)} skipped; {why})")
        fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
        split_by, groups, why = choose_groups(
            split_by,
            [str(frame.video) for frame in project.frames],
            lambda: similarity_groups(self._pixels(frame) for frame in project.frames),
            [frame.name for frame in project.frames],
            fractions,
        )
        if split == "train":
            log.info("%s: split by %s: %d group(s) of %d frames%s", path, split_by, len(set(groups)), len(groups), why)
        of = "samples" if split_by == "similarity" else "groups"  # look-alike groups differ much in size
        names_of = [frame.name for frame in project.frames]
        what = f"{path} by {split_by}"
        chosen = deal_or_reuse(names_of, groups, split, fractions, seed, what, of, splits_from, log)
        self.frames = [project.frames[i] for i in chosen]
        self._groups_of = [groups[i] for i in chosen]
        pairs = (
            resolve_pairs(flip_pairs, names, "flip_pairs")
            if flip_pairs is not None
            else project.symmetries or flip_pairs_from_names(names)
        )
        self.meta = KeypointMeta(names=names, flip_pairs=pairs, skeleton=project.edges)

    def __len__(self) -> int:
        return len(self.frames)

    def labelled(self) -> np.ndarray:
        labelled = [np.isfinite(frame.keypoints).all(axis=1) for frame in self.frames]
        return np.array(labelled, bool).reshape(len(self.frames), self.meta.num_keypoints)

    def groups(self) -> list[str]:
        return self._groups_of

    def image_sources(self) -> list[tuple[str, Path | bytes]]:
        return [(frame.name, frame.image or self._pixels(frame).tobytes()) for frame in self.frames]

    def load(self, index: int) -> RawSample:
        frame = self.frames[index]
        labelled = np.isfinite(frame.keypoints).all(axis=1)
        points = np.nan_to_num(frame.keypoints).astype(np.float32)
        image, keypoints, affine = letterbox(self._pixels(frame), points, self.size)
        return RawSample(image=image, keypoints=keypoints, visible=labelled, id=frame.name, affine=affine)

    def _pixels(self, frame: Frame) -> np.ndarray:
        """The frame's image, H×W×3 uint8 RGB."""
        if frame.image is not None:
            return read_image(frame.image, max_pixels=self.max_pixels)
        image = np.asarray(self.videos[frame.video][frame.index])
        return np.repeat(image, 3, axis=2) if image.ndim == 3 and image.shape[2] == 1 else image


@dataclass(frozen=True)
class Project:
    names: list[str]
    edges: list[tuple[int, int]]
    symmetries: list[tuple[int, int]]
    videos: list  # sleap_io.Video, opened to read a frame at a time (no handle kept: DataLoader workers fork)
    frames: list[Frame]
    issues: list[str]


@functools.lru_cache(maxsize=4)
def _read_project(path: Path, instances: str, mtime: int, max_pixels: int) -> Project:
    """The labels file read once for the three splits (mtime keys the cache)."""
    sio = sleap_io()
    try:
        labels = sio.load_slp(str(path), open_videos=False)
    except Exception as error:  # h5py and sleap-io raise their own types for a file that is not a .slp
        raise DataError(f"{path}: not a readable SLEAP labels file ({str(error).splitlines()[0][:200]})") from None
    if len(labels.skeletons) != 1:
        raise DataError(f"{path}: {len(labels.skeletons)} skeletons; kp trains one skeleton: keep one in SLEAP")
    skeleton = labels.skeletons[0]
    skips = SkipLog(str(path))
    readable = [_open(video, path, skips) for video in labels.videos]
    video_index = {id(video): i for i, video in enumerate(labels.videos)}  # sleap-io compares videos by identity
    frames, places, sizes = [], [], []
    for labelled_frame in labels.labeled_frames:
        video = video_index[id(labelled_frame.video)]
        people = [instance for instance in labelled_frame.user_instances if not instance.is_empty]
        if not people or not readable[video]:
            continue  # predictions only, or a video not found (counted once by _open)
        name = _frame_name(labelled_frame.video, labelled_frame.frame_idx)
        if len(people) > 1 and instances == "one":
            raise DataError(
                f"{path}: {name} has {len(people)} labelled instances; kp trains on one animal per frame: label "
                "one instance per frame, or set data.dataset.instances=first to take each frame's first"
            )
        image = _image_file(labelled_frame.video, labelled_frame.frame_idx)
        try:
            if image:
                check_image_file(image, f"{path}: frame {labelled_frame.frame_idx}")
            size = image_size(image, max_pixels) if image else _video_size(labelled_frame.video)
        except DataError as error:
            skips.skip(str(error))
            continue
        frames.append(Frame(video, labelled_frame.frame_idx, name, image, people[0].numpy().astype(np.float32)))
        places.append(f"{path}: {name}")
        sizes.append(size)
    names = skeleton.node_names
    good, labelled = check_points([f.keypoints for f in frames], sizes, places, names, path, skips)
    frames = [
        Frame(f.video, f.index, f.name, f.image, np.where(mask[:, None], f.keypoints, np.nan))
        for f, mask, ok in zip(frames, labelled, good)
        if ok
    ]
    kept = drop_repeats([f.name for f in frames], [f.keypoints for f in frames], places, skips)
    skips.report(log)
    return Project(
        names=names,
        edges=[tuple(edge) for edge in skeleton.edge_inds],
        symmetries=sorted(tuple(sorted(pair)) for pair in skeleton.symmetry_inds),
        videos=labels.videos,
        frames=[frames[i] for i in kept],
        issues=skips.reasons,
    )


def _open(video, path: Path, skips: SkipLog) -> bool:
    """Open the video to read one frame at a time, looking beside the .slp where it is not where it says (a relative
    name from the .slp's folder, an absolute one by its file name); False (its frames left out, counted) where it is
    in neither place. An image list counts as found where its first image is (a missing image is a skip later)."""
    files = video.filename if isinstance(video.filename, list) else [video.filename]
    if not Path(files[0]).exists():
        beside = [str(path.parent / (Path(file).name if Path(file).is_absolute() else file)) for file in files]
        if not Path(beside[0]).exists():
            listed = f"{files[0]} (and {len(files) - 1} more images)" if len(files) > 1 else files[0]
            skips.skip(f"{path}: video {listed} not found, nor beside the .slp: its frames are left out")
            return False
        video.replace_filename(beside if isinstance(video.filename, list) else beside[0], open=False)
    video.open(keep_open=False)
    return True


def _image_file(video, index: int) -> Path | None:
    """The frame's image file where the video is a list of images (kp reads and checks it itself)."""
    return Path(video.filename[index]) if isinstance(video.filename, list) else None


def _frame_name(video, index: int) -> str:
    """The frame's image file, else `<video file> frame <index>` (of the original video, for embedded frames)."""
    source = video.source_video or video
    if isinstance(source.filename, list):
        return (
            str(source.filename[index]) if index < len(source.filename) else f"{source.filename[0]} ... frame {index}"
        )
    return f"{source.filename} frame {index}"


def _video_size(video) -> tuple[int, int]:
    _, height, width, _ = video.shape
    return width, height
