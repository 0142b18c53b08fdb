"""Train a keypoint model: `python train.py [group=option ...] [key=value ...]` (see `python train.py --help`).

Composes the Hydra config in conf/ and runs kp.training.train: fit with Lightning, test the best checkpoint, and leave
in the run directory checkpoints/ (best and last.ckpt, each usable on its own with `kp.load`), csv/metrics.csv,
metrics.json, predictions.png, run_info.json and .hydra/ (the resolved config and the overrides).
Resume with ckpt_path=last (the newest run of the same task_name) or ckpt_path=<file>.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kp.build import ConfigError
from kp.module import NonFiniteLossError
from kp.training import train

log = logging.getLogger("kp.train")


# An absolute config path, so that sweep.py (which imports this module) finds conf/ too.
@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except ConfigError as error:
        log.error("configuration error: %s", error)
        sys.exit(f"configuration error: {error}")
    except NonFiniteLossError as error:
        log.error("training stopped: %s", error)
        sys.exit(f"training stopped: {error}")


if __name__ == "__main__":
    main()
