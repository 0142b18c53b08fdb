"""The `kp` command: `kp <command> [arguments]`, one module per command in kp/cli/, each with its docstring (the
command's help) and `main(argv=None)`, built from kp/cli/common.py (parser, argument types, one-line errors) and
importing its work only once its arguments are parsed. `kp train` and `kp sweep` take Hydra overrides like
`python train.py`, and so do `kp evaluate`, `kp doctor` and `kp preview`."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train a model (Hydra overrides, as python train.py)",
    "sweep": "sweeps of kp train (Hydra multiruns) with a leaderboard",
    "predict": "keypoints for new images and videos: CSV, overlays",
    "smooth": "smooth keypoint trajectories of a prediction CSV: Kalman, Savitzky-Golay, median",
    "evaluate": "a trained run's evaluation report on a split: metrics, errors, figures, coverage",
    "export": "ONNX and TorchScript files with a parity and latency report",
    "doctor": "check a dataset's labels: duplicates, swaps, outliers, coverage (doctor/report.md)",
    "refine": "pick the video frames a model gets wrong as a labelling job; merge the corrected labels back",
    "preview": "a picture of a dataset's samples and targets",
    "features": "a look inside a trained network for one image",
    "submit": "a Kaggle facial-keypoints submission",
}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else None
    if name not in COMMANDS:
        lines = "\n".join(f"  {command:<10} {about}" for command, about in COMMANDS.items())
        print(f"usage: kp <command> [arguments]  (kp <command> --help)\n\ncommands:\n{lines}")
        sys.exit(0 if name in (None, "-h", "--help") else f"kp: unknown command {name!r}")
    sys.argv = [f"kp {name}", *sys.argv[2:]]
    importlib.import_module(f"kp.cli.{name}").main()
