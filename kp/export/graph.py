"""What an exported file computes, and the metadata it carries (kp.inference.onnx reads them back)."""

from __future__ import annotations

import json
from dataclasses import asdict

import torch
from torch import nn

from kp.errors import ConfigError
from kp.inference.predictor import Predictor

RAW_OUTPUTS = ("keypoints", "visibility", "count")  # the earlier hourglass stacks are a training signal only
PREPROCESSING = (
    "uint8 image / 255 as float32, NCHW; RGB when channels is 3, grey when 1; letterboxed into fit_size "
    "(width, height) when set, then the test transforms (kp.inference.preprocess.Preprocess)"
)


class ExportGraph(nn.Module):
    """What an exported file computes: images -> (keypoints, scores, difficulty) through
    KeypointModule.locate_details (decode), or the network's raw outputs in `output_names` order. The difficulty
    (kp.calibration.difficulty, B×K input pixels) times the calibration's scale in the metadata is the uncertainty
    radius: an exported model keeps its calibration."""

    def __init__(self, predictor: Predictor, decode: bool = True, flip: bool = False):
        super().__init__()
        if flip and not decode:
            raise ConfigError("--flip merges the image's and its mirror's outputs before decoding: it needs --decode")
        module = predictor.module
        if flip:
            module.meta.flip_permutation()  # unknown flip pairs: a clear error, not a failed trace
        self.net = module.net  # the weights, registered here: tracing the LightningModule itself fails
        self._predict = module.locate_details
        self.codec = module.codec  # decodes the raw outputs of a --no-decode export for the parity check
        self.decode, self.flip = decode, flip
        # the radius's scale for this flip mode (kp.calibration), stored in the metadata: None when uncalibrated
        self.calibration = predictor.calibrations.get(flip) if decode else None
        with torch.no_grad():
            outputs = self.net.eval()(torch.zeros(1, *predictor.input_shape))
        decoded = ["keypoints", "scores", "difficulty"]
        self.output_names = decoded if decode else [name for name in RAW_OUTPUTS if name in outputs]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.decode:
            prediction = self._predict(images, flip=self.flip)
            return prediction.keypoints, prediction.scores, prediction.difficulty
        outputs = self.net(images)
        return tuple(outputs[name] for name in self.output_names)


def model_name(predictor: Predictor) -> str:
    backbone = predictor.spec.model["backbone"]["_target_"].rsplit(".", 1)[-1]
    return f"{backbone} ({predictor.module.codec.name} target, from {predictor.checkpoint})"


def metadata(predictor: Predictor, graph: ExportGraph, decoder: str | None, batch: int | None) -> dict[str, str]:
    """Everything a consumer of the file needs, as strings (ONNX metadata_props; TorchScript extra files)."""
    spec, meta = predictor.spec, predictor.meta
    return {
        "keypoint_names": json.dumps(meta.names),
        "flip_pairs": json.dumps(meta.flip_pairs),
        "skeleton": json.dumps(meta.skeleton),
        "input_shape": json.dumps(spec.input_shape),  # C, H, W
        "channels": "rgb" if spec.input_shape[0] == 3 else "grey",
        "preprocessing": json.dumps({"about": PREPROCESSING, "fit_size": spec.fit_size, "transforms": spec.transforms}),
        "outputs": json.dumps(graph.output_names),
        "decoded": json.dumps(graph.decode),  # keypoints in input pixels (x = column, y = row), scores, difficulty
        "decoder": json.dumps(decoder),
        "flip": json.dumps(graph.flip),
        # radius = scale × the difficulty output (kp.calibration.Calibration); null: the checkpoint had none for
        # this flip mode (kp evaluate fits one, then export again)
        "calibration": json.dumps(graph.calibration.to_dict() if graph.calibration else None),
        "batch": json.dumps(batch),  # null: any batch size
        "kp_spec": json.dumps(asdict(spec)),  # kp.build.InferenceSpec: what kp.load rebuilds the predictor from
    }
