"""The data contract every dataset follows.

A dataset yields, per image, a dict with
  image     float32 tensor C×H×W in [0, 1]
  keypoints float32 tensor K×2, pixel coordinates (x = column, y = row) in *that* image; the centre of the top-left
            pixel is (0, 0), so the image spans [-0.5, W - 0.5] × [-0.5, H - 0.5]
  visible   bool tensor K: False for a keypoint that is missing, occluded or outside the frame
  count     (optional) float32 scalar, an extra regression target, already normalised (see KeypointMeta.count_scale)
  id        str: where the sample comes from (file path, `file:line`, `file#annotation`), to trace any prediction
  affine    float32 tensor 2×3: the map from the source image's pixels to this image's pixels (the loader's crop or
            resize, then the transforms'), so predictions can be taken back to the source (kp.geometry)
and knows nothing about how keypoints become training targets (that is the codec's job, on the model's device).

A subclass implements `__len__` and `load(index)`; this base class applies the optional albumentations transform,
marks keypoints that left the frame as invisible and converts to tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from kp.data.io import MAX_PIXELS
from kp.errors import ConfigError
from kp.geometry import IDENTITY, compose


@dataclass
class KeypointMeta:
    """What the rest of the framework needs to know about a dataset's keypoints."""

    names: list[str]
    # Pairs (i, j) of keypoints that swap under a horizontal flip (left eye <-> right eye). None: not known (neither
    # listed nor guessed from the names), which switches mirror augmentation and flip test off; [] says that none
    # are needed.
    flip_pairs: list[tuple[int, int]] | None = field(default_factory=list)
    # Edges (i, j) drawn between keypoints in pictures.
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    # The pair whose distance normalises NME (e.g. the outer eye corners); None: the image's longer side.
    norm_pair: tuple[int, int] | None = None
    # A sample's `count` target times count_scale gives the count in its natural unit (cards, objects).
    count_scale: float | None = None

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_permutation(self) -> list[int]:
        """Index map that reorders keypoints after a horizontal flip; unknown flip pairs are an error (the datamodule
        and the module switch mirroring off before that can happen)."""
        if self.flip_pairs is None:  # a ConfigError: kp evaluate --flip and kp export --flip report it in one line
            raise ConfigError(
                f"mirroring needs the flip pairs of the keypoints {self.names}, and none were listed or "
                f"guessed from the names: set data.dataset.flip_pairs=[[left_x, right_x], ...], or [] "
                f"when no keypoint has a mirror partner"
            )
        perm = list(range(self.num_keypoints))
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return perm


@dataclass
class RawSample:
    """What `load` returns: a H×W×C uint8 (or float in [0, 1]) image and keypoints in its pixel coordinates."""

    image: np.ndarray
    keypoints: np.ndarray  # K×2 float, x = column, y = row
    visible: np.ndarray  # K bool
    count: float | None = None
    id: str | None = None  # None: the index
    affine: np.ndarray | None = None  # 2×3, source pixels -> `image` pixels where the loader cropped or resized


class KeypointDataset(Dataset):
    """Base class: subclasses set `self.meta` and implement `__len__` and `load`."""

    meta: KeypointMeta
    # (width, height) a whole new image is letterboxed into before the test transforms, as this loader sizes its own
    # images; None: the transforms alone size it. Part of the preprocessing a checkpoint carries for prediction.
    fit_size: tuple[int, int] | None = None
    # For face datasets: the crop a detected face gets at prediction (kp predict --detect faces), as (side, shift
    # down) in units of OpenCV's Haar face box, so that the face fills it as it filled the training images.
    face_crop: tuple[float, float] | None = None
    # The label file or folder the samples come from, for messages; and the samples skipped while reading it
    # (`file:line: reason`, see kp.data.io.SkipLog), which a run writes to data_issues.csv.
    source: str = ""
    issues: list[str] | tuple[()] = ()  # not [], which every instance would share: loaders assign their own list
    # The split whose samples this one repeats by design (facial: test is val when test_fraction=0), which the check
    # for the same image in two splits passes over; None: none.
    repeats: str | None = None

    def __init__(self, transform=None, max_pixels: int = MAX_PIXELS):
        # `transform` is a callable (image, keypoints, visible, meta) -> (image, keypoints, visible) applied to the
        # raw numpy sample; it gets the meta for the flip pairs. See kp.data.transforms. Images above max_pixels are
        # refused from their header (the datamodule's max_image_megapixels).
        self.transform = transform
        self.max_pixels = max_pixels

    def load(self, index: int) -> RawSample:
        raise NotImplementedError

    def labelled(self) -> np.ndarray | None:
        """N×K bool: which keypoints of each sample carry a usable label, read without loading images (None: not
        known before loading, as for generated data). The datamodule refuses a split with none."""
        return None

    def groups(self) -> list[str] | None:
        """Per sample, the group it was split by (person, video, image): data.train_fraction keeps whole groups, as
        the split does. None: every sample is its own group."""
        return None

    def image_sources(self) -> list[tuple[str, Path | bytes]] | None:
        """Per sample, its name and its image file (Path) or pixels (bytes), for the check for the same image under
        two names (None: no check, as for generated data)."""
        return None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        raw = self.load(index)
        image, keypoints, visible = raw.image, np.asarray(raw.keypoints, np.float32), np.asarray(raw.visible, bool)
        affine = IDENTITY if raw.affine is None else np.asarray(raw.affine, np.float64)
        if self.transform is not None:
            image, keypoints, visible, applied = self.transform(image, keypoints, visible, self.meta)
            affine = compose(applied, affine)
        if image.ndim == 2:
            image = image[:, :, None]
        height, width = image.shape[:2]
        inside = (
            (keypoints[:, 0] >= -0.5)
            & (keypoints[:, 0] <= width - 0.5)
            & (keypoints[:, 1] >= -0.5)
            & (keypoints[:, 1] <= height - 0.5)
        )
        visible = visible & inside & np.isfinite(keypoints).all(axis=1)
        # Invisible keypoints keep finite coordinates so that no NaN can reach a loss even through a zero weight.
        keypoints = np.where(visible[:, None], keypoints, 0.0).astype(np.float32)
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
            "keypoints": torch.from_numpy(keypoints),
            "visible": torch.from_numpy(visible),
            "id": raw.id if raw.id is not None else str(index),
            "affine": torch.from_numpy(affine.astype(np.float32)),
        }
        if raw.count is not None:
            sample["count"] = torch.tensor(raw.count, dtype=torch.float32)
        return sample


class Subset(KeypointDataset):
    """The samples `indices` of `data`, which keeps its meta, sizes, source and transform (data.train_fraction)."""

    def __init__(self, data: KeypointDataset, indices: list[int]):
        super().__init__(data.transform, data.max_pixels)
        self.data, self.indices = data, list(indices)
        self.meta, self.fit_size, self.face_crop = data.meta, data.fit_size, data.face_crop
        self.source, self.issues, self.repeats = data.source, data.issues, data.repeats

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> RawSample:
        return self.data.load(self.indices[index])

    def labelled(self) -> np.ndarray | None:
        labelled = self.data.labelled()
        return None if labelled is None else labelled[self.indices]

    def groups(self) -> list[str] | None:
        groups = self.data.groups()
        return None if groups is None else [groups[i] for i in self.indices]

    def image_sources(self) -> list[tuple[str, Path | bytes]] | None:
        sources = self.data.image_sources()
        return None if sources is None else [sources[i] for i in self.indices]
