"""The `kp` command: one subcommand per module, each module's own `main` (`kp predict ...` = `python -m kp.predict
...`). `kp train` takes Hydra overrides like `python train.py`."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("kp.training", "train a model (Hydra overrides, as python train.py)"),
    "predict": ("kp.predict", "keypoints for new images and videos: CSV, overlays"),
    "evaluate": ("kp.evaluate", "a trained run's evaluation report on a split: metrics, errors, figures, coverage"),
    "features": ("kp.viz.features", "a look inside a trained network for one image"),
    "export": ("kp.export", "ONNX and TorchScript files with a parity and latency report"),
    "submit": ("kp.submit", "a Kaggle facial-keypoints submission"),
    "preview": ("kp.data.preview", "a picture of a dataset's samples and targets"),
    "doctor": ("kp.doctor", "check a dataset's labels: duplicates, swaps, outliers, coverage (doctor/report.md)"),
}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else None
    if name not in COMMANDS:
        lines = "\n".join(f"  {command:<10} {about}" for command, (_, about) in COMMANDS.items())
        print(f"usage: kp <command> [arguments]  (kp <command> --help)\n\ncommands:\n{lines}")
        sys.exit(0 if name in (None, "-h", "--help") else f"kp: unknown command {name!r}")
    sys.argv = [f"kp {name}", *sys.argv[2:]]
    importlib.import_module(COMMANDS[name][0]).main()


if __name__ == "__main__":
    main()
