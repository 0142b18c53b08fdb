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
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kp.errors import USER_ERRORS, one_line
from kp.leaderboard import summarize
from kp.training import train

log = logging.getLogger("kp.sweep")
failed_jobs = []  # jobs run in this process (the basic and Optuna launchers): the sweep's exit status counts them


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="train")
def main(cfg: DictConfig) -> float:
    # The worst objective rather than NaN for a job that fails or has no value: Optuna refuses NaN (it would record
    # a failed trial) and learns to avoid what fails.
    worst = float("-inf") if cfg.optimized_mode == "max" else float("inf")
    try:
        objective = train(cfg)
    except Exception as error:  # train() recorded it in the job's run_info.json; the leaderboard shows it
        failed_jobs.append(cfg.paths.output_dir)
        if isinstance(error, USER_ERRORS) and not cfg.get("verbose", False):
            log.error("job failed, the sweep goes on: %s", one_line(error))  # a message to act on, no traceback
        else:
            log.exception("job failed, the sweep goes on: %s", error)
        return worst
    return worst if math.isnan(objective) else objective


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summarize"]:
        if len(sys.argv) != 3:
            sys.exit("usage: python sweep.py --summarize <sweep_dir>")
        try:
            summarize(Path(sys.argv[2]))
        except FileNotFoundError as error:
            sys.exit(f"error: {error}")
    else:
        if any(arg.startswith("hydra/launcher=slurm") for arg in sys.argv) and not shutil.which("sbatch"):
            sys.exit("error: hydra/launcher=slurm needs SLURM (no sbatch on PATH): run on the cluster's login node, "
                     "or drop hydra/launcher=slurm to run the jobs here")
        main()
        if failed_jobs:
            sys.exit(f"{len(failed_jobs)} job(s) failed (see the leaderboard and each job's run_info.json): "
                     f"{', '.join(failed_jobs)}")
