"""A new image -> the network's input, and keypoints in the input's pixels -> in the image's own pixels: the same
preprocessing for the torch and the ONNX predictor, read from the checkpoint's InferenceSpec."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from hydra.utils import instantiate

from kp import geometry
from kp.build import InferenceSpec
from kp.errors import ModelLoadError
from kp.geometry import letterbox


class Preprocess:
    """A new image (any size, RGB or grey) -> the network's input and the 2×3 affine from its pixels to the input's:
    letterboxed into the dataset's working size where its loader sizes images, then the test transforms."""

    def __init__(self, spec: InferenceSpec, meta):
        self.channels, self.height, self.width = spec.input_shape
        self.fit_size = tuple(spec.fit_size) if spec.fit_size else None
        self.transform = instantiate(spec.transforms) if spec.transforms else None
        self.meta = meta

    def __call__(self, image: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape[2] == 1 and self.channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        none = np.zeros((0, 2), np.float32)
        affine = geometry.IDENTITY
        if self.fit_size:
            image, _, affine = letterbox(image, none, self.fit_size)
        if self.transform is not None:
            image, _, _, applied = self.transform(image, none, np.zeros(0, bool), self.meta)
            affine = geometry.compose(applied, affine)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape[2] == 3 and self.channels == 1:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
        if image.shape[:2] != (self.height, self.width):
            raise ModelLoadError(
                f"preprocessing gave a {image.shape[1]}×{image.shape[0]} image, the model takes "
                f"{self.width}×{self.height}: the checkpoint's test transforms do not size new images"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
        return tensor / 255.0 if image.dtype == np.uint8 else tensor, affine


def to_source(keypoints: np.ndarray, affines: np.ndarray | torch.Tensor | None) -> np.ndarray:
    """Keypoints B×K×2 in input pixels -> in each source image's pixels (B×2×3 source -> input affines; None: as
    they are), float64."""
    keypoints = np.asarray(keypoints, np.float64)
    if affines is None:
        return keypoints
    affines = np.asarray(affines, np.float64)
    return np.stack([geometry.apply(geometry.invert(a), k) for a, k in zip(affines, keypoints)])
