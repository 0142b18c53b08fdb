"""Use a trained model: `kp.load(path)` -> a Predictor, from a run directory or a checkpoint file on its own.

A checkpoint carries its InferenceSpec (kp.build): model and codec config, keypoint metadata, input shape and the
test-time preprocessing. Nothing else is read: no config files, no training data.

    predictor = kp.load("logs/train/runs/<time>")           # the run's best checkpoint
    predictor = kp.load("model.onnx")                        # or a kp.export.export ONNX file, run by ONNX Runtime
    keypoints, scores = predictor.predict([image])           # H×W×3 RGB (or H×W / H×W×1 grey) uint8 arrays
    # keypoints N×K×2 in each image's own pixels (x = column, y = row), scores N×K in [0, 1]

Scores: the heatmap peak (heatmap targets), the visibility probability (coordinate models with a visibility head)
or 1; with flip=True times the agreement of the image's and its mirror's predictions (kp.codecs.base.flip_test).
`predictor.predict_with_radius` adds the calibrated uncertainty radius per keypoint (kp.calibration), and
`predictor.pose_prior_errors` a label-free error signal per keypoint: its distance to the pose PCA (and multi-view
PCA) of the run's training labels, which the checkpoint carries (kp.unsupervised_losses.fit_pose_priors).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from kp import geometry
from kp.build import InferenceSpec
from kp.calibration import Calibration
from kp.inference.preprocess import Preprocess, to_source
from kp.module import KeypointModule
from kp.unsupervised_losses import load_pose_priors, pca_keypoint_errors


class Predictions(NamedTuple):
    """Keypoints B×K×2, scores B×K and calibrated radii B×K (NaN without a calibration), as numpy arrays."""

    keypoints: np.ndarray
    scores: np.ndarray
    radius: np.ndarray


class Predictor:
    """A trained model ready to predict: `predict` on raw images, or `predict_batch` / `predict_with_radius` on
    preprocessed ones. Subclasses run the network: TorchPredictor here, OnnxPredictor (kp.inference.onnx).
    `calibrations` (kp.calibration, per flip mode) give each prediction an uncertainty radius; `pose_priors` (the
    fitted PCA terms by name, with `pose_priors_absent`: why each other one is missing) a label-free error signal."""

    module: KeypointModule | None = None  # the torch module; None where another runtime runs the network

    def __init__(
        self, spec: InferenceSpec, checkpoint: Path | None, calibrations: dict[bool, Calibration] | None = None
    ):
        self.spec, self.checkpoint = spec, checkpoint
        self.meta = spec.keypoint_meta()
        self.preprocess = Preprocess(spec, self.meta)
        self.calibrations = dict(calibrations or {})
        self.pose_priors, self.pose_priors_absent = load_pose_priors(spec.pose_priors)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.spec.input_shape)

    def predict_batch(
        self, images: torch.Tensor, affines: np.ndarray | torch.Tensor | None = None, flip: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed images B×C×H×W -> keypoints B×K×2 (in source pixels when `affines` B×2×3 are given, else in
        input pixels) and scores B×K, as numpy arrays."""
        return self.predict_with_radius(images, affines, flip)[:2]

    def check_flip(self, flip: bool) -> None:
        """An error where this model cannot predict with or without test-time flip as asked (an exported graph has
        it built in or not); kp predict asks before it writes anything."""

    def predict_with_radius(
        self, images, affines: np.ndarray | torch.Tensor | None = None, flip: bool = False
    ) -> Predictions:
        """`predict_batch` plus the radius around each keypoint that holds the true point with probability
        1 - alpha (in the same pixels as the keypoints; NaN when the model has no calibration for this flip mode)."""
        raise NotImplementedError

    def radius(self, difficulty: np.ndarray, affines: np.ndarray | torch.Tensor | None, flip: bool) -> np.ndarray:
        """B×K difficulties (input pixels) -> calibrated radii in the keypoints' pixels (NaN without a calibration)."""
        fitted = self.calibrations.get(flip)
        radius = fitted.radius(difficulty) if fitted else np.full(difficulty.shape, np.nan)
        if affines is not None:  # lengths shrink or grow with the affine's scale
            radius = radius / np.array([geometry.scale(a) for a in np.asarray(affines, np.float64)])[:, None]
        return radius

    def radius_hint(self, flip: bool) -> str:
        """Why the radius is missing (kp predict prints it when the model has no calibration for this flip mode)."""
        return (
            f"the model has no calibration for flip={flip}; "
            f"`kp evaluate RUN{' --flip' if flip else ''}` calibrates it on the validation split"
        )

    def pose_prior_errors(self, keypoints: np.ndarray, affines: np.ndarray | torch.Tensor | None = None) -> dict:
        """Each pose prior's error of poses B×K×2 (name -> B×K: each keypoint's distance to its reprojection on the
        prior's PCA; NaN where the prior does not measure it): in source pixels when `affines` B×2×3 (source -> input)
        are given, else in input pixels. Computed in input pixels, where the priors were fitted, and divided by each
        affine's scale (geometry.scale): exact for the letterbox, a uniform scale and a shift."""
        if not self.pose_priors:
            return {}
        keypoints, scale = np.asarray(keypoints, np.float64), np.ones(len(keypoints))
        if affines is not None:
            affines = np.asarray(affines, np.float64)
            keypoints = np.stack([geometry.apply(a, k) for a, k in zip(affines, keypoints)])
            scale = np.array([geometry.scale(a) for a in affines])
        return {name: pca_keypoint_errors(term, keypoints) / scale[:, None] for name, term in self.pose_priors.items()}

    def prepare(self, images) -> tuple[torch.Tensor, np.ndarray]:
        """Raw images (H×W×C uint8 arrays, any size) -> the network's input B×C×H×W and the B×2×3 affines from each
        image's pixels to the input's."""
        prepared = [self.preprocess(image) for image in images]
        return torch.stack([tensor for tensor, _ in prepared]), np.stack([affine for _, affine in prepared])

    def predict(self, images, flip: bool = False, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Raw images (a list of H×W×C uint8 arrays, RGB or grey, any size) -> keypoints N×K×2 in each image's own
        pixels and scores N×K."""
        results = [
            self.predict_batch(*self.prepare(images[start : start + batch_size]), flip)
            for start in range(0, len(images), batch_size)
        ]
        if not results:
            k = self.meta.num_keypoints
            return np.zeros((0, k, 2)), np.zeros((0, k))
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


class TorchPredictor(Predictor):
    """The network in torch, on `module`'s device."""

    def __init__(
        self,
        module: KeypointModule,
        spec: InferenceSpec,
        checkpoint: Path | None,
        calibrations: dict[bool, Calibration] | None = None,
    ):
        super().__init__(spec, checkpoint, calibrations)
        self.module = module.eval()

    @torch.inference_mode()
    def predict_with_radius(
        self, images: torch.Tensor, affines: np.ndarray | torch.Tensor | None = None, flip: bool = False
    ) -> Predictions:
        device = next(self.module.parameters()).device
        prediction = self.module.locate_details(images.to(device), flip=flip)
        keypoints = to_source(prediction.keypoints.float().cpu().numpy(), affines)
        radius = self.radius(prediction.difficulty.float().cpu().numpy(), affines, flip)
        return Predictions(keypoints, prediction.scores.float().cpu().numpy(), radius)
