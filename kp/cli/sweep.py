"""Sweeps: Hydra multiruns of `kp train` in which a failing job is recorded and the sweep goes on, ending with a
leaderboard (the same as `python sweep.py ...` in a checkout).

  kp sweep -m model=unet,hourglass optimizer.lr=1e-3,3e-4   # grid: every combination, one job each
  kp sweep hparams_search=unet_optuna                       # Optuna search (kp/conf/hparams_search/)
  kp sweep --summarize logs/train/multiruns/<time>          # rebuild the leaderboard from the job dirs

Each job runs in logs/<task_name>/multiruns/<time>/<job number>/ (its W&B run, with logger=wandb, grouped by the
sweep); the leaderboard (leaderboard.csv, leaderboard.md, objective.png) lands in logs/<task_name>/multiruns/<time>/.
The exit status is 1 when a job failed (jobs run in this process: the basic and Optuna launchers).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kp.config import CONFIG_PATH
from kp.train.leaderboard import summarize
from kp.train.sweep import sweep_job


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--summarize"]:
        if len(argv) != 2:
            sys.exit("usage: kp sweep --summarize <sweep_dir>")
        try:
            summarize(Path(argv[1]))
        except FileNotFoundError as error:
            sys.exit(f"error: {error}")
        return
    if any(arg.startswith("hydra/launcher=slurm") for arg in argv) and not shutil.which("sbatch"):
        sys.exit(
            "error: hydra/launcher=slurm needs SLURM (no sbatch on PATH): run on the cluster's login node, "
            "or drop hydra/launcher=slurm to run the jobs here"
        )
    sys.argv = [sys.argv[0], *argv]  # Hydra reads sys.argv
    failed_jobs: list[str] = []

    @hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
    def job(cfg: DictConfig) -> float:
        return sweep_job(cfg, failed_jobs)

    job()
    if failed_jobs:
        sys.exit(
            f"{len(failed_jobs)} job(s) failed (see the leaderboard and each job's run_info.json): "
            f"{', '.join(failed_jobs)}"
        )
