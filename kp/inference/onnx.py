"""A Predictor over an exported ONNX file (`kp.load("model.onnx")`): the model runs in ONNX Runtime, not in torch.

Everything it needs comes from the file's metadata (kp.export.graph.metadata): the InferenceSpec for the preprocessing
and the keypoint metadata, whether test-time flip is in the graph, a fixed batch size if it has one, and the
calibration of the uncertainty radius. The file must have been exported with --decode (the default): it returns
keypoints in input pixels, scores and each keypoint's difficulty, which are mapped back to each image's own pixels and
scaled into the calibrated radius here, exactly as kp.inference.predictor.TorchPredictor does. A file exported before
kp wrote the difficulty output predicts without a radius (radius_hint says to export it again).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kp.build import InferenceSpec
from kp.calibration import Calibration
from kp.errors import ModelLoadError
from kp.inference.predictor import Predictions, Predictor
from kp.inference.preprocess import to_source


class OnnxPredictor(Predictor):
    """A Predictor (kp.inference.predictor) with ONNX Runtime running the network; `module` is None."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such ONNX file")
        try:
            import onnxruntime
        except ImportError:
            raise ModelLoadError(f"{path}: ONNX models need onnxruntime: pip install -e '.[export]'") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise ModelLoadError(f"{path}: not a readable ONNX model ({str(error).splitlines()[0][:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if "kp_spec" not in props:
            raise ModelLoadError(f"{path}: no kp metadata in this ONNX file: export it with kp export RUN")
        if not json.loads(props["decoded"]):
            raise ModelLoadError(
                f"{path} returns raw network outputs (exported with --no-decode): export it again "
                f"with --decode to predict keypoints"
            )
        self.flip_in_graph = json.loads(props["flip"])
        self.fixed_batch = json.loads(props["batch"])
        self.has_difficulty = "difficulty" in [output.name for output in self.session.get_outputs()]
        fitted = json.loads(props.get("calibration", "null"))
        calibrations = {self.flip_in_graph: Calibration(**fitted)} if fitted and self.has_difficulty else {}
        super().__init__(InferenceSpec(**json.loads(props["kp_spec"])), path, calibrations)

    def check_flip(self, flip: bool) -> None:
        """ModelLoadError (kp predict's one line) where `flip` is not what the exported graph does."""
        if flip != self.flip_in_graph:
            action = "export it again with --flip" if flip else "predict with --flip, or export it again without --flip"
            raise ModelLoadError(
                f"{self.checkpoint} was exported {'with' if self.flip_in_graph else 'without'} test-time flip: {action}"
            )

    def predict_with_radius(self, images, affines=None, flip: bool = False) -> Predictions:
        """Preprocessed images B×C×H×W (torch or numpy) -> keypoints B×K×2 (in source pixels when `affines` B×2×3 are
        given, else in input pixels), scores B×K and the calibrated radius B×K (NaN when the file carries no
        calibration or no difficulty output). Test-time flip is part of the exported graph or not: `flip` must match
        it (check_flip)."""
        self.check_flip(flip)
        images = np.asarray(images, np.float32)
        n = len(images)
        batch = self.fixed_batch or n
        chunks = []
        for start in range(0, n, batch):
            chunk = images[start : start + batch]
            padded = (
                np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)]) if len(chunk) < batch else chunk
            )
            chunks.append([output[: len(chunk)] for output in self.session.run(None, {"images": padded})])
        keypoints, scores, *difficulty = (np.concatenate(parts) for parts in zip(*chunks))
        difficulty = difficulty[0] if difficulty else np.full(scores.shape, np.nan)
        return Predictions(to_source(keypoints, affines), scores, self.radius(difficulty, affines, flip))

    def radius_hint(self, flip: bool) -> str:
        if not self.has_difficulty:
            return f"{self.checkpoint} was exported before kp kept the radius in ONNX files: export it again"
        return (
            f"{self.checkpoint} was exported from a checkpoint without calibration for flip={flip}: "
            f"`kp evaluate RUN{' --flip' if flip else ''}`, then export it again"
        )
