"""Clips of unlabelled video for the loss terms that need no labels (kp.unsupervised_losses), and the labelled poses
their PCA terms are fitted on.

The videos are decoded once, in order (kp.data.video: never by seeking), into a bounded in-memory cache of frames
already letterboxed to the model's input size as the labelled frames are (the dataset's fit_size), grey or RGB as the
model takes them. A training step then only indexes the cache: decoding never runs inside a step. A video longer
than its share of the cache (`frames` / the number of videos) keeps evenly spaced runs of `clip_length` frames; a
shorter one is kept whole. An undecodable frame ends a run (counted in the log), so a clip never spans a gap.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from kp.data.base import KeypointDataset
from kp.data.video import read_frames, video_info
from kp.errors import ConfigError, InputError
from kp.geometry import letterbox

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm")


class ClipDataset(Dataset):
    """Clips of `clip_length` consecutive cached frames: item i is a float32 tensor T×C×H×W in [0, 1] (the labelled
    images' contract). `length`: at least this many items, the clip starts repeated (the training loader draws one
    epoch of the labelled loader's length from it, shuffled)."""

    def __init__(self, frames: np.ndarray, runs: list[tuple[int, int]], clip_length: int, length: int = 0):
        """frames N×H×W×C uint8; runs: (first, end) index ranges of consecutive frames in `frames`."""
        self.frames, self.clip_length = frames, clip_length
        self.starts = np.array([s for first, end in runs for s in range(first, end - clip_length + 1)], np.int64)
        if len(self.starts) == 0:
            raise InputError(
                f"data.unlabelled: no run of {clip_length} consecutive decodable frames in the cached video: "
                "set a shorter data.unlabelled.clip_length"
            )
        self.length = max(len(self.starts), length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        start = self.starts[index % len(self.starts)]
        clip = self.frames[start : start + self.clip_length]  # T×H×W×C
        return torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2))).float() / 255.0


def find_videos(videos: str | list[str], project: str | None) -> list[Path]:
    """The video files: a list of paths, a glob, or `auto` (the `videos/` folder of data.dataset.project)."""
    if videos == "auto":
        if project is None:
            raise ConfigError(
                "data.unlabelled.videos=auto takes the videos/ folder of data.dataset.project, and this dataset has "
                "no project: list the videos (data.unlabelled.videos=[a.mp4, b.mp4]) or give a glob"
            )
        folder = Path(project) / "videos"
        found = sorted(p for p in folder.glob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        where = f"{folder} (data.unlabelled.videos=auto)"
    elif isinstance(videos, str):
        found = sorted(Path(p) for p in glob.glob(videos))
        where = f"the glob {videos} (data.unlabelled.videos)"
    else:
        found = [Path(p) for p in videos]
        missing = [str(p) for p in found if not p.is_file()]
        if missing:
            raise InputError(f"data.unlabelled.videos: no such file: {', '.join(missing)}")
        where = "data.unlabelled.videos"
    if not found:
        raise InputError(
            f"no video in {where}: point data.unlabelled.videos at video files (a list or a glob), or train "
            "without the terms that need them (loss=default)"
        )
    return found


def cache_clips(
    videos: list[Path],
    fit_size: tuple[int, int],
    channels: int,
    clip_length: int = 8,
    frames: int = 1000,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Decode the videos once into N×H×W×C uint8 frames letterboxed into fit_size (width, height), and the runs of
    consecutive frames (first, end) among them (module docstring)."""
    if clip_length < 2:
        raise ConfigError(f"data.unlabelled.clip_length={clip_length}: a clip needs at least 2 consecutive frames")
    budget = frames // len(videos)
    if budget < clip_length:
        raise ConfigError(
            f"data.unlabelled.frames={frames} leaves {budget} frames per video for {len(videos)} videos, less than "
            f"one clip of {clip_length}: raise data.unlabelled.frames"
        )
    cached, runs, bad = [], [], 0
    for path in videos:
        count, _, _ = video_info(path)  # an InputError where OpenCV cannot open it
        if count < clip_length:
            raise InputError(
                f"{path}: {count} frames, shorter than one clip of data.unlabelled.clip_length={clip_length}: "
                "set a shorter clip_length or leave this video out"
            )
        if count <= budget:
            wanted = list(range(count))
        else:  # evenly spaced runs of clip_length frames
            firsts = np.linspace(0, count - clip_length, budget // clip_length).round().astype(int)
            wanted = sorted({f + i for f in firsts for i in range(clip_length)})
        previous = None
        for number, image in read_frames(path, wanted):
            if image is None:
                bad += 1
                previous = None
                continue
            if previous is None or number != previous + 1:
                runs.append([len(cached), len(cached)])  # a new run of consecutive frames
            cached.append(_fit(image, fit_size, channels))
            runs[-1][1] = len(cached)
            previous = number
    if bad:
        log.warning("data.unlabelled: %d frame(s) could not be decoded; clips do not span them", bad)
    log.info(
        "data.unlabelled: %d frames of %d video(s) cached (%.0f MB), %d run(s) of consecutive frames",
        len(cached),
        len(videos),
        sum(frame.nbytes for frame in cached) / 1e6,
        len(runs),
    )
    stacked = np.stack(cached) if cached else np.zeros((0, fit_size[1], fit_size[0], channels), np.uint8)
    return stacked, [tuple(run) for run in runs]


def _fit(image: np.ndarray, fit_size: tuple[int, int], channels: int) -> np.ndarray:
    """An RGB frame letterboxed into fit_size as the labelled frames are, grey (H×W×1) for a one-channel model."""
    fitted, _, _ = letterbox(image, np.zeros((0, 2), np.float32), fit_size)
    if channels == 1:
        fitted = cv2.cvtColor(fitted, cv2.COLOR_RGB2GRAY)[:, :, None]
    return fitted


def input_pixel_poses(data: KeypointDataset, input_size: tuple[int, int]) -> np.ndarray:
    """The training split's labelled poses N×K×2 in the model's input pixels, NaN where a keypoint is not labelled:
    what the PCA terms are fitted on. Read through the dataset's own loader (its letterbox), without augmentation."""
    poses = []
    for index in range(len(data)):
        raw = data.load(index)
        if raw.image.shape[:2] != tuple(input_size):
            raise ConfigError(
                f"loss pose_pca/multiview_pca: the labelled images of {data.source or type(data).__name__} are "
                f"{raw.image.shape[1]}×{raw.image.shape[0]}, not the model's input "
                f"{input_size[1]}×{input_size[0]}: these terms need a dataset that sizes its frames itself "
                "(data.dataset width/height), or drop them from the loss"
            )
        keypoints = np.asarray(raw.keypoints, np.float64)
        poses.append(np.where(np.asarray(raw.visible, bool)[:, None], keypoints, np.nan))
    return np.stack(poses)
