"""Sweeps: Hydra multiruns of train.py in which a failing job is recorded and the sweep goes on, ending with a
leaderboard.

  python sweep.py -m model=unet,hourglass optimizer.lr=1e-3,3e-4   # grid: every combination, one job each
  python sweep.py hparams_search=unet_optuna                       # Optuna search (conf/hparams_search/)
  python sweep.py --summarize logs/train/multiruns/<time>          # rebuild the leaderboard from the job dirs

Each job runs in logs/<task_name>/multiruns/<time>/<job number>/ (its W&B run, with logger=wandb, grouped by the
sweep); the leaderboard (leaderboard.csv, leaderboard.md, objective.png) lands in logs/<task_name>/multiruns/<time>/.
"""

import logging
import math
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kp.leaderboard import summarize
from kp.training import train

log = logging.getLogger("kp.sweep")


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="train")
def main(cfg: DictConfig) -> float:
    # The worst objective rather than NaN for a job that fails or has no value: Optuna refuses NaN (it would record
    # a failed trial) and learns to avoid what fails.
    worst = float("-inf") if cfg.optimized_mode == "max" else float("inf")
    try:
        objective = train(cfg)
    except Exception as error:  # train() recorded it in the job's run_info.json; the leaderboard shows it
        log.exception("job failed, the sweep goes on: %s", error)
        return worst
    return worst if math.isnan(objective) else objective


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summarize"]:
        if len(sys.argv) != 3:
            sys.exit("usage: python sweep.py --summarize <sweep_dir>")
        summarize(Path(sys.argv[2]))
    else:
        main()
