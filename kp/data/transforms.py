"""Keypoint-aware augmentation: albumentations pipelines declared in config, one per split.

`KeypointAugment(steps)` is the `transform` a dataset calls as transform(image, keypoints, visible, meta) ->
(image, keypoints, visible, affine), affine being the 2×3 map from input to output pixels that it applied. `steps`
are albumentations transforms in order; nested lists and dicts are flattened in order and None entries dropped, so a
config can splice in the `augment` group (a dict of named steps, conf/augment/) and a user can drop one step with
`augment.blur=null` or all of them with `augment=none`.

What it adds to albumentations:
  - mirror images swap left and right: after an odd number of reflections (HorizontalFlip, VerticalFlip, Transpose)
    the keypoints are reordered through the dataset's `meta.flip_pairs`, so "left_eye" stays the person's left eye;
    where the pairs are unknown the datamodule drops the reflections (`without_mirrors`), and a reflection that
    still meets unknown pairs is an error, never a left eye labelled on the right;
  - keypoints that leave the frame keep their (outside) coordinates, never clipped; the dataset base class then marks
    them invisible;
  - keypoints already invisible (missing, NaN) ride along at a placeholder and stay invisible;
  - the geometry it applied comes back as an affine, measured by carrying probe points through the pipeline (every
    geometric step here is affine), so predictions on a transformed image can be taken back to the original;
  - the random state is reseeded from torch's per-process seed, so DataLoader workers do not repeat each other's (or
    the previous epoch's) augmentations and a seeded run is reproducible; all steps draw from one generator, so each
    step's chance and parameters are independent of the others'.

albumentations scales keypoints about pixel corners (x' = x * s) while cv2.resize, which moves the image, scales about
pixel centres (x' = (x + 0.5) * s - 0.5, the project's convention): up to half a pixel of systematic error. Use the
corrected `Resize`, `SmallestMaxSize`, `LongestMaxSize`, `RandomResizedCrop` and `CropAndPad` below; the albumentations
originals are refused.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence

import albumentations as A
import numpy as np
import torch

from kp import geometry

# Transforms that mirror the image: each one turns a left keypoint into a right one.
REFLECTIONS = {"HorizontalFlip", "VerticalFlip", "Transpose"}


class _PixelCentreScaling:
    """Mixin for albumentations' resizing transforms: scale keypoints about pixel centres, as the image is."""

    def apply_to_keypoints(self, keypoints: np.ndarray, *args, **params) -> np.ndarray:
        shifted = keypoints.astype(np.float32, copy=True)
        shifted[:, :2] += 0.5
        result = super().apply_to_keypoints(shifted, *args, **params)
        result[:, :2] -= 0.5
        return result


class Resize(_PixelCentreScaling, A.Resize):
    """albumentations.Resize (height, width) with exact keypoints."""


class SmallestMaxSize(_PixelCentreScaling, A.SmallestMaxSize):
    """Shorter side to max_size, keeping the aspect ratio (the PyTorch facial seed's Rescale)."""


class LongestMaxSize(_PixelCentreScaling, A.LongestMaxSize):
    """Longer side to max_size, keeping the aspect ratio."""


class RandomResizedCrop(_PixelCentreScaling, A.RandomResizedCrop):
    """A random window, resized to size=(height, width)."""


class CropAndPad(_PixelCentreScaling, A.CropAndPad):
    """Crop (negative percent) or pad each side at random; with keep_size=True the result is resized back to the
    input size: a random crop-and-resize that needs no size, as in conf/augment/default.yaml."""


_CORNER_SCALING = (
    A.Resize,
    A.SmallestMaxSize,
    A.LongestMaxSize,
    A.RandomResizedCrop,
    A.RandomSizedCrop,
    A.CropAndPad,
    A.RandomScale,
)


def _flatten(steps) -> list:
    if steps is None:
        return []
    if isinstance(steps, Mapping):
        steps = list(steps.values())
    if isinstance(steps, Sequence) and not isinstance(steps, str):
        return [step for item in steps for step in _flatten(item)]
    return [steps]


class KeypointAugment:
    def __init__(self, steps):
        self.steps = _flatten(steps)
        for step in self.steps:
            if isinstance(step, _CORNER_SCALING) and not isinstance(step, _PixelCentreScaling):
                name = type(step).__name__
                fix = f"kp.data.transforms.{name}" if name in globals() else "an affine or crop step"
                raise ValueError(
                    f"albumentations.{name} scales keypoints about pixel corners (off by up to half a "
                    f"pixel): use {fix} instead"
                )
        with warnings.catch_warnings():  # a pipeline of pixel-only steps is fine: keypoints then pass unchanged
            warnings.filterwarnings("ignore", "Got processor for keypoints")
            self.pipeline = A.Compose(
                self.steps,
                keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
                save_applied_params=True,  # tells which steps ran, to count reflections
            )

    def __call__(self, image: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, meta):
        # Each sample's randomness is drawn from torch's generator: seeded by seed_everything, distinct in every
        # DataLoader worker and epoch, and saved in checkpoints, so a resumed run continues the same augmentations.
        # One generator shared by every step, drawn from in turn. albumentations' set_random_seed would give each
        # step its own generator with the *same* seed: every step's "apply?" draw is then the same number, so the
        # steps nest (every mirrored image was also rotated and zoomed, every blurred one mirrored), the training set
        # is no longer mirror-symmetric, and the model learns to place keypoints differently on mirrored faces.
        seed = int(torch.randint(2**32, ()))
        self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
        visible = visible & np.isfinite(keypoints).all(axis=1)
        placeholder = np.where(visible[:, None], keypoints, 0.0).astype(np.float32)
        height, width = image.shape[:2]
        probes = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float32)
        out = self.pipeline(image=image, keypoints=np.concatenate([placeholder, probes]))
        moved = np.asarray(out["keypoints"], np.float64)[:, :2]
        keypoints, affine = moved[: len(placeholder)].astype(np.float32), geometry.from_points(probes, moved[-4:])
        reflections = sum(name in REFLECTIONS for name, _ in out["applied_transforms"])
        if reflections % 2:
            order = meta.flip_permutation()
            keypoints, visible = keypoints[order], visible[order]
        image = out["image"]
        if image.ndim == 2:  # some steps drop the channel axis of a grey image
            image = image[:, :, None]
        return image, keypoints, visible, affine

    def without_mirrors(self) -> KeypointAugment:
        """The same pipeline without its reflection steps (for keypoints whose left/right pairs are unknown)."""
        return KeypointAugment([step for step in self.steps if type(step).__name__ not in REFLECTIONS])

    def __repr__(self) -> str:
        return f"KeypointAugment({[type(step).__name__ for step in self.steps]})"
