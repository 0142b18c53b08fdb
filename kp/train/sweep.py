"""One job of a sweep: a failing job is recorded and the sweep goes on (`kp sweep`, kp/cli/sweep.py)."""

from __future__ import annotations

import logging
import math

from omegaconf import DictConfig

from kp.errors import USER_ERRORS, one_line
from kp.train.loop import train

log = logging.getLogger(__name__)


def sweep_job(cfg: DictConfig, failed_jobs: list[str]) -> float:
    """train(cfg)'s objective; for a job that fails or has no value, its run directory is added to failed_jobs and
    the worst objective returned rather than NaN: Optuna refuses NaN (it would record a failed trial) and learns to
    avoid what fails."""
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
