"""Sweeps: Hydra multiruns of `kp train` in which a failing job is recorded and the sweep goes on, ending with a
leaderboard (the same as `python sweep.py ...` in a checkout).

  kp sweep -m model=unet,hourglass optimizer.lr=1e-3,3e-4   # grid: every combination, one job each
  kp sweep hparams_search=unet_optuna                       # Optuna search (conf/hparams_search/)
  kp sweep summarize logs/train/multiruns/<time>            # rebuild the leaderboard from the job dirs

The overrides are kp train's (`kp train --help` lists the groups and keys); a comma-separated value sweeps over its
values with -m, and every value is checked before the first job starts (a misspelt one ends in one line).
Each job runs in logs/<task_name>/multiruns/<time>/<job number>/ (its W&B run, with logger=wandb, grouped by the
sweep); the leaderboard (leaderboard.csv, leaderboard.md, objective.png, and learning_curve.png when
data.train_fraction varies) lands in logs/<task_name>/multiruns/<time>/. The exit status is 1 when a job failed (jobs
run in this process: the basic and Optuna launchers).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kp.cli.common import hydra_verbose, parser, subcommands, user_errors_in_one_line
from kp.cli.train import run_hydra
from kp.errors import ConfigError

SUMMARIZE = """Rebuild a sweep's leaderboard from its job folders:

    kp sweep summarize logs/<task_name>/multiruns/<time>

(leaderboard.csv, leaderboard.md, objective.png; a job that failed is listed with its error)."""


class SweepFailed(RuntimeError):
    """One job or more failed: the sweep went on, and its leaderboard says which."""


def main(argv: list[str] | None = None) -> None:
    subcommands(argv, _sweep, summarize=_summarize, **{"--summarize": _summarize})  # the older spelling too


def _summarize(argv: list[str]) -> None:
    command = parser("kp sweep summarize", SUMMARIZE)
    command.add_argument("sweep_dir", type=Path, help="a sweep's folder, logs/<task_name>/multiruns/<time>")
    args = command.parse_args(argv)
    with user_errors_in_one_line(args.verbose, also=(FileNotFoundError,)):
        from kp.train.leaderboard import summarize

        summarize(args.sweep_dir)


def _sweep(argv: list[str]) -> None:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    verbose = hydra_verbose(argv)
    failed_jobs: list[str] = []
    with user_errors_in_one_line(verbose, also=(SweepFailed,)):
        if any(arg.startswith("hydra/launcher=slurm") for arg in argv) and not shutil.which("sbatch"):
            raise ConfigError(
                "hydra/launcher=slurm needs SLURM (no sbatch on PATH): run on the cluster's login node, "
                "or drop hydra/launcher=slurm to run the jobs here"
            )
        from kp.config import check_command_line

        check_command_line(argv)  # every value of the sweep, before Hydra makes the sweep folder
        run_hydra(argv, _job(failed_jobs))
        if failed_jobs:
            raise SweepFailed(
                f"{len(failed_jobs)} job(s) failed (see the leaderboard and each job's run_info.json): "
                f"{', '.join(failed_jobs)}"
            )


def _job(failed_jobs: list[str]):
    # Lightning before Hydra sets up logging: imported later, its messages would print twice.
    from kp.train.sweep import sweep_job

    return lambda cfg: sweep_job(cfg, failed_jobs)
