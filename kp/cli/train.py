"""Train a keypoint model: `kp train [group=option ...] [key=value ...]` (see `kp train --help`); the same as
`python train.py ...` in a checkout.

Composes the Hydra config (kp/conf, plus a folder of your own with `--config-dir DIR`) and runs kp.train.loop.train:
fit with Lightning, test the best checkpoint, and leave in the run directory checkpoints/ (best and last.ckpt, each
usable on its own with `kp.load`), csv/metrics.csv, metrics.json, predictions.png, run_info.json and .hydra/ (the
resolved config and the overrides). Resume with ckpt_path=last (the newest run of the same task_name) or
ckpt_path=<file>. Bad configuration, data or checkpoint, or a diverging loss, ends in one line and exit status 1.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kp.config import CONFIG_PATH
from kp.errors import user_errors_in_one_line
from kp.train.loop import train


def main(argv: list[str] | None = None) -> None:
    if argv is not None:  # Hydra reads sys.argv
        sys.argv = [sys.argv[0], *argv]

    @hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
    def job(cfg: DictConfig) -> float:
        with user_errors_in_one_line(cfg.get("verbose", False)):
            return train(cfg)

    job()
