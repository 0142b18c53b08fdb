"""Train a keypoint model: `python train.py [group=option ...] [key=value ...]` (see `python train.py --help`).

Composes the Hydra config in conf/, trains with Lightning, tests the best checkpoint, and leaves in the run directory:
checkpoints/ (best and last.ckpt), csv/metrics.csv (every logged value), metrics.json (final test metrics and the best
validation metric), predictions.png (test predictions against the ground truth), run_info.json (git commit and dirty flag, package
versions, status, wall time) and .hydra/ (the resolved config and the overrides).
Resume with ckpt_path=last (the newest run of the same task_name) or ckpt_path=<file>.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from rich.console import Console
from rich.table import Table

from kp import run_info
from kp.models.pretrained import WeightsError
from kp.module import KeypointModule, NonFiniteLossError
from kp.viz import plot_predictions
from kp.wandb_logging import finish_runs

log = logging.getLogger("kp.train")


class ConfigError(ValueError):
    """A configuration that cannot work, found before training starts."""


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, KeypointModule]:
    """Instantiate the datamodule and the LightningModule from the config, checking that the pieces fit."""
    datamodule = instantiate(cfg.data)
    meta = datamodule.meta
    channels, height, width = datamodule.input_shape
    num_keypoints = meta.num_keypoints
    wanted = cfg.model.get("num_keypoints")
    if wanted is not None and wanted != num_keypoints:
        raise ConfigError(f"model.num_keypoints={wanted} but the data ({cfg.data.dataset._target_}) has "
                          f"{num_keypoints} keypoints: {meta.names}")
    codec = instantiate(cfg.target)(input_size=(height, width))
    net = instantiate(cfg.model)(num_keypoints=num_keypoints, input_shape=(channels, height, width),
                                 target=codec.name, stride=codec.stride)
    losses = {name: instantiate(term) for name, term in cfg.loss.items()}
    _check_losses(net, losses, datamodule, (channels, height, width))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = KeypointModule(net, codec, losses, meta, (height, width), instantiate(cfg.optimizer), scheduler,
                            pck_thresholds=tuple(cfg.metrics.pck_thresholds), pck_norm=cfg.metrics.pck_norm,
                            num_examples=cfg.num_examples)
    return datamodule, module


def _check_losses(net, losses, datamodule, input_shape) -> None:
    """Every loss term must find the model output and the data target it reads: say so now, not mid-epoch."""
    if not losses:
        raise ConfigError("the loss group defines no term: nothing to train")
    with torch.no_grad():
        was_training = net.training
        outputs = net.eval()(torch.zeros(1, *input_shape))
        net.train(was_training)
    sample = datamodule.splits["train"][0]
    for name, term in losses.items():
        for key in term.requires:
            if key not in outputs:
                raise ConfigError(f"loss term '{name}' ({type(term).__name__}) needs the model output '{key}', "
                                  f"which this model does not produce: set model.{key}_head=true or drop loss.{name}")
        if "count" in term.requires and "count" not in sample:
            raise ConfigError(f"loss term '{name}' needs a 'count' target, which this dataset does not provide")


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint, write metrics.json and predictions.png; return the best validation value of
    cfg.optimized_metric (what a sweep optimises). run_info.json records how the run went, failed or not."""
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
    ckpt_path = _checkpoint_to_resume(cfg, output_dir)
    datamodule, module = build(cfg)
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(flat_config(cfg))
    if trainer.world_size > 1:
        _ddp_processes_join_this_job()

    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)
                       and c.monitor == cfg.optimized_metric), None)
    best_path = checkpoint.best_model_path if checkpoint else ""
    best_score = checkpoint.best_model_score if checkpoint else None
    if best_score is None:  # no checkpoint was saved (fast_dev_run): the last validation value
        best_score = trainer.callback_metrics.get(cfg.optimized_metric, torch.tensor(float("nan")))
    best_value = float(best_score)

    test_results = trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)[0]
    if trainer.is_global_zero:
        metrics = {key: float(value) for key, value in sorted(test_results.items())}
        metrics[f"best/{cfg.optimized_metric}"] = best_value
        metrics["best_checkpoint"] = best_path
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if module.test_examples:
            plot_predictions(**module.test_examples, meta=module.meta, path=output_dir / "predictions.png")
        _print_table(metrics, module.meta.names, output_dir)
    return best_value


def flat_config(cfg: DictConfig) -> dict:
    """The resolved config with dotted keys (model.backbone.width: 16), as loggers show a run's parameters."""
    def walk(node: dict, prefix: str):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value
    # without the hydra node that in-process composition (tests) adds: a run's own config has none
    return dict(walk({key: OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
                      for key, node in cfg.items() if key != "hydra"}, ""))


def _checkpoint_to_resume(cfg: DictConfig, output_dir: Path) -> str | None:
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        try:
            ckpt_path = str(run_info.newest_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name,
                                                            exclude=output_dir))
        except FileNotFoundError as error:  # a config problem: say it in one line, not a traceback
            raise ConfigError(str(error)) from error
    elif ckpt_path and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
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
    table = Table(title=f"Final metrics ({output_dir})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float) and not any(key.endswith(f"/{name}") for name in keypoint_names):
            table.add_row(key, "nan" if math.isnan(value) else f"{value:.4f}")
    Console().print(table)


# An absolute config path, so that sweep.py (which imports this module) finds conf/ too.
@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    except (ConfigError, WeightsError) as error:
        log.error("configuration error: %s", error)
        sys.exit(f"configuration error: {error}")
    except NonFiniteLossError as error:
        log.error("training stopped: %s", error)
        sys.exit(f"training stopped: {error}")


if __name__ == "__main__":
    main()
