"""Use a trained model: `kp.load(path)` -> a Predictor, from a run directory or a checkpoint file on its own.

A checkpoint carries its InferenceSpec (kp.build): model and codec config, keypoint metadata, input shape and the
test-time preprocessing. Nothing else is read: no config files, no training data.

    predictor = kp.load("logs/train/runs/<time>")           # the run's best checkpoint
    predictor = kp.load("model.onnx")                        # or a kp.export ONNX file, run by ONNX Runtime
    keypoints, scores = predictor.predict([image])           # H×W×3 RGB (or H×W / H×W×1 grey) uint8 arrays
    # keypoints N×K×2 in each image's own pixels (x = column, y = row), scores N×K in [0, 1]

Scores: the heatmap peak (heatmap targets), the visibility probability (coordinate models with a visibility head)
or 1; with flip=True times the agreement of the image's and its mirror's predictions (kp.codecs.base.flip_test).
`predictor.predict_with_radius` adds the calibrated uncertainty radius per keypoint (kp.calibration).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from hydra.utils import instantiate

from kp import calibration, geometry
from kp.build import InferenceSpec, build_net
from kp.calibration import Calibration
from kp.data.io import letterbox
from kp.module import KeypointModule
from kp.run_dir import RunDir


class ModelLoadError(ValueError):
    """A model path that is not a usable kp checkpoint, with the path and what to do in the message."""


def read_checkpoint(path: str | Path, require_spec: bool = True) -> dict:
    """A kp checkpoint's contents (tensors and plain containers only), or ModelLoadError saying what is wrong: not a
    file, not a checkpoint (Lightning writes zip archives), damaged (every member's CRC is checked), not a Lightning
    checkpoint, or (require_spec) without the model description kp.load needs."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            head = file.read(16)
        raise ModelLoadError(f"{path}: not a checkpoint: kp checkpoints are zip archives written by Lightning, this "
                             f"file {'is empty' if not head else f'begins {head!r}'}: point at checkpoints/*.ckpt of a run")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        damaged = f"({error})"
    if damaged:
        raise ModelLoadError(f"{path}: damaged: {damaged} fails its integrity (CRC) check; copy the file again or "
                             "use another checkpoint of the run")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelLoadError(f"{path}: not a readable PyTorch checkpoint ({reason[:200]})") from None
    except Exception as error:  # weights_only refuses pickled objects: not a checkpoint kp wrote
        raise ModelLoadError(f"{path}: not a kp checkpoint: it holds Python objects beyond tensors and plain "
                             f"containers ({type(error).__name__}); kp does not load those (they could run code)") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModelLoadError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if require_spec and "kp" not in checkpoint:
        raise ModelLoadError(f"{path}: this checkpoint carries no model description (written by a kp version before "
                             f"self-contained checkpoints): retrain, or resume it once with ckpt_path=<it> to rewrite it")
    return checkpoint


def check_weights_fit(checkpoint: dict, module: torch.nn.Module, path: str | Path) -> None:
    """ModelLoadError naming the first layer whose name or shape differs between a checkpoint and a model, and the
    model config the checkpoint was made with."""
    theirs, ours = checkpoint["state_dict"], module.state_dict()
    mismatch = next((f"layer {name} is not in the checkpoint" if name not in theirs else
                     f"{name} is {tuple(theirs[name].shape)} in the checkpoint, {tuple(ours[name].shape)} here"
                     for name in ours if name not in theirs or theirs[name].shape != ours[name].shape), None)
    unexpected = [name for name in theirs if name not in ours]
    if mismatch is None and unexpected:
        mismatch = f"the checkpoint's layer {unexpected[0]} is not in this model"
    if mismatch:
        spec = checkpoint.get("kp") or {}
        made_by = Path(path).resolve().parents[1] / ".hydra" / "config.yaml"
        origin = (f"its run's config: {made_by}" if made_by.is_file() else
                  f"its model: {(spec.get('model') or {}).get('backbone', {}).get('_target_', 'unknown')} on "
                  f"{spec.get('dataset', 'unknown data')}")
        raise ModelLoadError(f"{path}: does not fit the model of this config: {mismatch} ({origin}); use the same "
                             "model, target and data settings as the run that wrote it")


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run directory's best checkpoint."""
    path = Path(path)
    if path.is_dir():
        try:
            return RunDir(path).best_checkpoint()
        except FileNotFoundError as error:
            raise ModelLoadError(str(error)) from None
    if not path.exists():
        raise ModelLoadError(f"{path}: no such run directory or checkpoint file")
    return path


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
            raise ModelLoadError(f"preprocessing gave a {image.shape[1]}×{image.shape[0]} image, the model takes "
                             f"{self.width}×{self.height}: the checkpoint's test transforms do not size new images")
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


class Predictions(NamedTuple):
    """Keypoints B×K×2, scores B×K and calibrated radii B×K (NaN without a calibration), as numpy arrays."""

    keypoints: np.ndarray
    scores: np.ndarray
    radius: np.ndarray


class Predictor:
    """A trained model ready to predict: `predict` on raw images, or `predict_batch` on preprocessed ones.
    `calibrations` (kp.calibration, per flip mode) give each prediction an uncertainty radius."""

    def __init__(self, module: KeypointModule, spec: InferenceSpec, checkpoint: Path | None,
                 calibrations: dict[bool, Calibration] | None = None):
        self.module, self.spec, self.checkpoint = module.eval(), spec, checkpoint
        self.meta = module.meta
        self.preprocess = Preprocess(spec, self.meta)
        self.calibrations = dict(calibrations or {})

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.spec.input_shape)

    def predict_batch(self, images: torch.Tensor, affines: np.ndarray | torch.Tensor | None = None,
                      flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed images B×C×H×W -> keypoints B×K×2 (in source pixels when `affines` B×2×3 are given, else in
        input pixels) and scores B×K, as numpy arrays."""
        return self.predict_with_radius(images, affines, flip)[:2]

    @torch.inference_mode()
    def predict_with_radius(self, images: torch.Tensor, affines: np.ndarray | torch.Tensor | None = None,
                            flip: bool = False) -> Predictions:
        """`predict_batch` plus the radius around each keypoint that holds the true point with probability
        1 - alpha (in the same pixels as the keypoints; NaN when the model has no calibration for this flip mode)."""
        device = next(self.module.parameters()).device
        prediction = self.module.predict_details(images.to(device), flip=flip)
        keypoints = to_source(prediction.keypoints.float().cpu().numpy(), affines)
        fitted = self.calibrations.get(flip)
        radius = fitted.radius(prediction.difficulty) if fitted else np.full(keypoints.shape[:2], np.nan)
        if affines is not None:  # lengths shrink or grow with the affine's scale
            radius = radius / np.array([geometry.scale(a) for a in np.asarray(affines, np.float64)])[:, None]
        return Predictions(keypoints, prediction.scores.float().cpu().numpy(), radius)

    def predict(self, images, flip: bool = False, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Raw images (a list of H×W×C uint8 arrays, RGB or grey, any size) -> keypoints N×K×2 in each image's own
        pixels and scores N×K."""
        results = []
        for start in range(0, len(images), batch_size):
            prepared = [self.preprocess(image) for image in images[start:start + batch_size]]
            batch = torch.stack([tensor for tensor, _ in prepared])
            results.append(self.predict_batch(batch, np.stack([affine for _, affine in prepared]), flip))
        if not results:
            k = self.meta.num_keypoints
            return np.zeros((0, k, 2)), np.zeros((0, k))
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def load(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """A Predictor from a run directory (its best checkpoint), a checkpoint file, or an ONNX file written by
    kp.export (kp.onnx_predictor: ONNX Runtime on the CPU, `device` does not apply)."""
    if str(path).endswith(".onnx"):
        from kp.onnx_predictor import OnnxPredictor  # onnxruntime is the optional `export` extra

        return OnnxPredictor(path)
    checkpoint_path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(checkpoint_path)
    spec = InferenceSpec(**checkpoint["kp"])
    codec, net = build_net(spec)
    meta = spec.keypoint_meta()
    module = KeypointModule(net, codec, {}, meta, tuple(spec.input_shape[1:]), optimizer=None, spec=checkpoint["kp"])
    check_weights_fit(checkpoint, module, checkpoint_path)
    module.load_state_dict(checkpoint["state_dict"])
    calibrations = {flip: calibration.from_checkpoint(checkpoint, flip) for flip in (False, True)}
    return Predictor(module.to(device), spec, checkpoint_path,
                     {flip: c for flip, c in calibrations.items() if c is not None})
