"""Train a keypoint model: `kp train [group=option ...] [key=value ...]`, the same as `python train.py ...` in a
checkout.

Composes the Hydra config (conf/, plus a folder of your own with `--config-dir DIR`) and runs kp.train.loop.train:
fit with Lightning, test the best checkpoint, and leave in the run directory logs/<task_name>/runs/<time>/
checkpoints/ (best and last.ckpt, each usable on its own with `kp.load`), csv/metrics.csv, metrics.json, eval/test/
(the evaluation report), run_info.json and .hydra/ (the resolved config and the overrides). Resume with
ckpt_path=last (the newest single run of the same task_name; it says which) or ckpt_path=<file>.

Every override is checked before the run starts: a misspelt key or option, or a value that cannot work
(data.batch_size=0), ends in one line with the nearest valid names, and so do bad data or checkpoints and a diverging
loss (exit status 1; verbose=true or HYDRA_FULL_ERROR=1 shows the traceback). A run that ends without a checkpoint
(it failed first, or debug=fast_dev_run) leaves no run folder behind.

`kp train --cfg job [overrides]` prints the config the overrides compose; `kp train --hydra-help`, Hydra's own flags.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kp.cli.common import hydra_verbose, user_errors_in_one_line
from kp.run_dir import RunDir


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        print(f"{__doc__}\n{config_groups()}")
        return
    verbose = hydra_verbose(argv)
    with user_errors_in_one_line(verbose):
        from kp.config import check_command_line

        check_command_line(argv)  # before Hydra makes a run folder
    run_hydra(argv, train_job(verbose))


def config_groups() -> str:
    """The config groups kp ships and their options, read from the package's files (Hydra's own help lists the same
    in seconds; this, at once)."""
    from importlib.resources import files

    lines = ["== Configuration groups == (group=option; a folder of your own joins them with --config-dir DIR)", ""]

    def walk(folder, group: str) -> None:
        options = sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))
        if group and options:
            lines.append(f"{group}: {', '.join(options)}")
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
            # hydra/: kp train --hydra-help; base/: what a group's options share, not an option to pick
            if entry.is_dir() and entry.name not in ("__pycache__", "hydra", "base"):
                walk(entry, f"{group}/{entry.name}" if group else entry.name)

    walk(files("kp.conf"), "")
    return "\n".join(lines)


def train_job(verbose: bool):
    """kp train's job: train(cfg) with its errors in one line, and no run folder left where no checkpoint was."""
    # Lightning before Hydra sets up logging: imported later, its messages would print twice.
    from kp.train.loop import train

    def job(cfg):
        shown = verbose or bool(cfg.get("verbose", False))  # verbose=true in the command line or a preset
        try:
            with user_errors_in_one_line(shown):
                return train(cfg)
        finally:
            _remove_if_no_model(RunDir(Path(cfg.paths.output_dir)), shown)

    return job


def _remove_if_no_model(run: RunDir, verbose: bool) -> None:
    """A single run that ended without a checkpoint is no run: its folder goes, so that logs/<task_name>/runs/ holds
    only runs kp.load, kp evaluate and ckpt_path=last can use. Kept with verbose=true (to look at), in a multirun (its
    leaderboard lists the failed job) and in DDP's other processes (rank 0 decides)."""
    import os
    import shutil

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if verbose or run.holds_a_model() or os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) != "0":
        return
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return
    shutil.rmtree(run.path, ignore_errors=True)
    print(f"no checkpoint was written: removed the run folder {run.path}", file=sys.stderr)


def run_hydra(argv: list[str], job) -> None:
    """Run job(cfg) as a Hydra app of kp's training config (Hydra reads sys.argv: its flags, overrides, -m)."""
    import hydra

    from kp.config import CONFIG_PATH

    sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")(job)()
