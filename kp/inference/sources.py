"""What `kp predict` and `kp refine` read: image files, folders, globs and videos (kp.data.video's reader), as batches
of preprocessed crops that remember where they came from. Sources yield images and ids only (no labels); an
unreadable image or frame becomes an item with an error, counted and listed by the caller, never the end of the
job."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from kp import geometry
from kp.data.faces import FaceDetector, face_crop_box
from kp.data.io import read_image
from kp.data.video import read_frames, undecodable, video_info
from kp.errors import DataError, InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv"}


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[Path]]:
    """(image files, video files) named by files, folders (searched recursively, any case of extension) and globs,
    in the order given, each once."""
    found: list[Path] = []
    for text in inputs:
        path = Path(text)
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except OSError as error:  # a name the file system refuses (longer than 255 bytes, ...)
            raise InputError(f"{text}: cannot be opened ({error.strerror or error})") from None
        if is_dir:
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        elif is_file:
            found.append(path)  # an explicit file is read by content, whatever its extension
        else:
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"{text}: no such file or folder, and no file matches it as a glob")
            found += matches
    unique = list(dict.fromkeys(found))
    videos = [p for p in unique if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p in unique if p.suffix.lower() not in VIDEO_SUFFIXES]
    if not images and not videos:
        raise InputError(
            f"{' '.join(inputs)}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos "
            f"({', '.join(sorted(VIDEO_SUFFIXES))}) found"
        )
    return images, videos


@dataclass
class Item:
    """One image or frame: its crops for the network (one, one per face, or none) and where they came from."""

    file: str
    frame: int | None = None
    tensors: list[torch.Tensor] = field(default_factory=list)
    affines: list[np.ndarray] = field(default_factory=list)  # source pixels -> input pixels, per crop
    boxes: list[tuple[int, int, int, int] | None] = field(default_factory=list)  # face boxes, per crop
    error: str | None = None  # unreadable: a skip
    source: np.ndarray | None = None  # the image itself, kept for overlays


class Cropper:
    """image -> Item: the whole image through the model's preprocessing, or each detected face cropped as the model's
    training images were framed."""

    def __init__(self, preprocess: Callable, face_crop: tuple[float, float] | None = None, keep_source: bool = False):
        self.preprocess, self.face_crop, self.keep_source = preprocess, face_crop, keep_source
        self.detector = FaceDetector() if face_crop else None

    def __call__(self, image: np.ndarray, file: str, frame: int | None = None) -> Item:
        item = Item(file, frame, source=image if self.keep_source else None)
        if self.detector is None:
            tensor, affine = self.preprocess(image)
            item.tensors, item.affines, item.boxes = [tensor], [affine], [None]
            return item
        for box in self.detector(image):
            crop_box = face_crop_box(box, *self.face_crop)
            crop, _, to_crop = geometry.crop_and_resize(image, np.zeros((0, 2), np.float32), crop_box, crop_box[2:])
            tensor, affine = self.preprocess(crop)
            item.tensors.append(tensor)
            item.affines.append(geometry.compose(affine, to_crop))
            item.boxes.append(box)
        return item


class ImageFiles(Dataset):
    def __init__(self, files: list[Path], cropper: Cropper):
        self.files, self.cropper = files, cropper

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Item:
        path = self.files[index]
        try:
            return self.cropper(read_image(path), str(path))
        except DataError as error:
            return Item(str(path), error=str(error))


class VideoFrames(IterableDataset):
    """Frames start, start + every, ... (before `end`) of one video, read in order (one reader: use 0 or 1 worker)."""

    def __init__(
        self,
        path: Path,
        cropper: Cropper,
        every: int = 1,
        start: int = 0,
        end: int | None = None,
        done: set[int] = frozenset(),
    ):
        if every < 1 or start < 0 or (end is not None and end <= start):
            raise InputError(f"--every {every} --start {start} --end {end}: need every >= 1 and 0 <= start < end")
        self.path, self.cropper, self.every, self.start, self.end = path, cropper, every, start, end
        self.done = done  # frames predicted before (a resumed job): not read again

    def wanted(self) -> list[int]:
        count, _, _ = video_info(self.path)
        if count <= 0:
            raise InputError(f"{self.path}: the video has no frames (empty, or its container states none)")
        frames = range(self.start, min(count, self.end) if self.end is not None else count, self.every)
        return [frame for frame in frames if frame not in self.done]

    def __iter__(self) -> Iterator[Item]:
        for frame, image in read_frames(self.path, self.wanted()):
            if image is None:
                yield Item(str(self.path), frame, error=undecodable(self.path, frame))
            else:
                yield self.cropper(image, str(self.path), frame)


def collate(items: list[Item]) -> tuple[list[Item], torch.Tensor | None, np.ndarray | None]:
    """A DataLoader batch: the items, and all their crops stacked (None when the batch has none)."""
    tensors = [tensor for item in items for tensor in item.tensors]
    if not tensors:
        return items, None, None
    return items, torch.stack(tensors), np.stack([affine for item in items for affine in item.affines])
