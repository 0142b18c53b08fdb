"""kp: a Lightning + Hydra experiment framework for image keypoint detection.

`kp.load(run_dir_or_checkpoint_or_onnx)` gives a Predictor for new images (kp.inference.predictor)."""


def load(path, device="cpu"):
    """A Predictor from a run directory, a checkpoint file or an exported .onnx file: see kp.inference.predictor."""
    from kp.inference.load import load as load_predictor  # torch and Lightning load only when a model is used

    return load_predictor(path, device)
