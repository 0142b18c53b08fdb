"""Training: fit, test the best checkpoint, and leave the run directory complete (docs/experiments.md, "What a run
writes").

`train(cfg)` is what train.py and sweep.py run; it returns the best validation value of cfg.optimized_metric (what a
sweep optimises). Resume with ckpt_path=last (the newest single run of the same task_name) or ckpt_path=<file>.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import datetime
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from rich.console import Console
from rich.table import Table

from kp.build import InferenceSpec, build
from kp.config import check_types
from kp.data.splits import SPLITS_FILE
from kp.errors import ConfigError
from kp.evaluation.evaluate import describe_data, evaluate
from kp.inference.checkpoint import check_weights_fit, read_checkpoint
from kp.inference.load import load
from kp.inference.predictor import TorchPredictor
from kp.run_dir import RunDir
from kp.train import run_info
from kp.train.quiet import quiet
from kp.train.wandb_logging import finish_runs

log = logging.getLogger(__name__)
quiet()


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint, write metrics.json and the evaluation report (eval/test/); return the best
    validation value of cfg.optimized_metric (what a sweep optimises). run_info.json records how the run went."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    run_info.record_start(output_dir)
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    try:
        best_value = _fit_and_test(cfg, output_dir, loggers)
    except BaseException as error:  # Ctrl-C included: the run dir says how it ended
        run_info.record_end(output_dir, error)
        finish_runs(loggers, failed=True)
        raise
    run_info.record_end(output_dir)
    finish_runs(loggers)  # each job of a multirun is its own W&B run
    return best_value


def _fit_and_test(cfg: DictConfig, output_dir: Path, loggers: list) -> float:
    check_types(cfg)
    ckpt_path = _checkpoint_to_resume(cfg, output_dir)
    datamodule, module = build(cfg)
    datamodule.write_issues(RunDir(output_dir).data_issues)
    datamodule.write_splits(output_dir / SPLITS_FILE)
    if ckpt_path:  # readable, intact and of this config's model, before Lightning loads it
        check_weights_fit(read_checkpoint(ckpt_path, require_spec=False), module, ckpt_path)
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(flat_config(cfg))
    if trainer.world_size > 1:
        _ddp_processes_join_this_job()

    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    checkpoint = next(
        (c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor == cfg.optimized_metric), None
    )
    best_path = checkpoint.best_model_path if checkpoint else ""
    best_score = checkpoint.best_model_score if checkpoint else None
    if best_score is None:  # no checkpoint was saved (fast_dev_run): the last validation value
        best_score = trainer.callback_metrics.get(cfg.optimized_metric, torch.tensor(float("nan")))
    best_value = float(best_score)

    test_results = trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)[0]
    if trainer.is_global_zero:
        metrics = {key: float(value) for key, value in sorted(test_results.items())}
        metrics[f"best/{cfg.optimized_metric}"] = best_value
        metrics["train_images"] = len(datamodule.splits["train"])  # the leaderboard's learning curve
        metrics["epochs"] = trainer.current_epoch  # those completed (max_time may stop a run early)
        metrics["best_checkpoint"] = best_path
        metrics["chosen_by"] = f"{cfg.optimized_metric} ({cfg.optimized_mode})"  # the validation metric that chose it
        run_dir = RunDir(output_dir)
        run_dir.metrics.write_text(json.dumps(metrics, indent=2))
        _print_table(metrics, module.meta.names, output_dir)
        if trainer.fast_dev_run:  # one batch of everything: a smoke test of the code, not a model to evaluate
            log.info("fast_dev_run: no evaluation report")
        else:
            _write_report(cfg, module, datamodule, best_path, run_dir, loggers)
    return best_value


def _write_report(cfg: DictConfig, module, datamodule, best_path: str, run_dir: RunDir, loggers: list) -> None:
    """The evaluation report of the test split (kp.evaluation.evaluate) in RUN/eval/test/, from the best checkpoint on
    its own (the module's weights where none was saved: no checkpoint callback); it calibrates the uncertainty radius
    on the validation split and stores the calibration in the checkpoint."""
    predictor = load(best_path) if best_path else TorchPredictor(module, InferenceSpec(**module.spec), None)
    result = evaluate(
        predictor,
        datamodule,
        "test",
        run_dir.eval_dir("test"),
        flip=module.flip_test,
        pck_thresholds=cfg.metrics.pck_thresholds,
        pck_norm=cfg.metrics.pck_norm,
        num_worst=cfg.num_examples,
        loggers=loggers,
        data=describe_data(cfg.data),
    )
    log.info("evaluation report: %s", result["report"])


def flat_config(cfg: DictConfig) -> dict:
    """The resolved config with dotted keys (model.backbone.width: 16), as loggers show a run's parameters, and the
    preset chosen in each config group (choices/model: simple_cnn), to group and filter runs by on a dashboard."""

    def walk(node: dict, prefix: str):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    # without the hydra node that in-process composition (tests) adds: a run's own config has none
    flat = dict(
        walk(
            {
                key: OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
                for key, node in cfg.items()
                if key != "hydra"
            },
            "",
        )
    )
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        flat.update(
            {
                f"choices/{group}": str(choice)
                for group, choice in choices.items()
                if not group.startswith("hydra") and choice is not None
            }
        )
    return flat


def _checkpoint_to_resume(cfg: DictConfig, output_dir: Path) -> str | None:
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        try:
            ckpt_path = str(
                run_info.newest_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name, exclude=output_dir)
            )
        except FileNotFoundError as error:  # a config problem: say it in one line, not a traceback
            raise ConfigError(str(error)) from error
        written = datetime.fromtimestamp(Path(ckpt_path).stat().st_mtime).isoformat(sep=" ", timespec="seconds")
        log.info("ckpt_path=last: the newest run of task_name=%s is %s (written %s)", cfg.task_name, ckpt_path, written)
    elif ckpt_path and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        run_info.update(output_dir, resumed_from=str(Path(ckpt_path).resolve()))
    return ckpt_path


def _ddp_processes_join_this_job() -> None:
    """Lightning starts the other DDP processes by re-running this script with sys.argv and hydra.run.dir. In a
    multirun job that would start a new sweep in another directory: make them re-run just this job, in its directory."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    hydra_cfg = HydraConfig.get()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def _print_table(metrics: dict, keypoint_names: list[str], output_dir: Path) -> None:
    table = Table(title="Final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float) and not any(key.endswith(f"/{name}") for name in keypoint_names):
            table.add_row(key, "nan" if math.isnan(value) else f"{value:.4f}")
    console = Console()
    console.print(table)
    console.print(f"run directory: {output_dir}", soft_wrap=True)  # on its own line: never wrapped mid-word
