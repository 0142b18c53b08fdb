"""kp.load: a Predictor from a run directory, a checkpoint file or an exported ONNX file."""

from __future__ import annotations

from pathlib import Path

import torch

from kp import calibration
from kp.build import InferenceSpec, build_net
from kp.inference.checkpoint import check_weights_fit, read_checkpoint, resolve_checkpoint
from kp.inference.onnx import OnnxPredictor
from kp.inference.predictor import Predictor, TorchPredictor
from kp.module import KeypointModule


def load(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """A Predictor from a run directory (its best checkpoint), a checkpoint file, or an ONNX file written by
    kp export (kp.inference.onnx: ONNX Runtime on the CPU, `device` does not apply)."""
    if str(path).endswith(".onnx"):
        return OnnxPredictor(path)
    checkpoint_path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(checkpoint_path)
    spec = InferenceSpec(**checkpoint["kp"])
    codec, net = build_net(spec)
    meta = spec.keypoint_meta()
    module = KeypointModule(net, codec, {}, meta, tuple(spec.input_shape[1:]), spec=checkpoint["kp"])
    check_weights_fit(checkpoint, module, checkpoint_path)
    module.load_state_dict(checkpoint["state_dict"])
    calibrations = {flip: calibration.from_checkpoint(checkpoint, flip) for flip in (False, True)}
    return TorchPredictor(
        module.to(device), spec, checkpoint_path, {flip: c for flip, c in calibrations.items() if c is not None}
    )
