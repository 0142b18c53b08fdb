"""Weights & Biases for kp: `logger=wandb` or `logger=[csv,wandb]` (settings in conf/logger/wandb.yaml).

WandbLogger is Lightning's, with two additions: it goes offline on its own when no API key is configured or the
server cannot be reached (no login prompt, no hang; `wandb sync` uploads the run later), and in a multirun each job
is its own run, grouped by the sweep and named by its overrides. WandbPanels (a callback,
conf/callbacks/)
draws predictions against the ground truth every N validation epochs and keeps the best value of every validation
metric in the run summary. train.py logs the flattened config and calls finish() after each job.
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch import Callback
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

from kp.viz import plot_predictions

log = logging.getLogger(__name__)


def offline_reason() -> str | None:
    """Why W&B cannot run online here, or None when it can (or when WANDB_MODE already decides)."""
    if os.environ.get("WANDB_MODE"):
        return None
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    if not os.environ.get("WANDB_API_KEY"):
        try:
            if netrc.netrc().authenticators(host) is None:  # where `wandb login` keeps the key
                return "no API key (set WANDB_API_KEY or run `wandb login`)"
        except (OSError, netrc.NetrcParseError):
            return "no API key (set WANDB_API_KEY or run `wandb login`)"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return f"{host} cannot be reached"
    return None


def _multirun_job() -> tuple[str, str] | None:
    """(sweep group, job name) inside a Hydra multirun job, else None."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra_cfg = HydraConfig.get()
    group = "/".join(Path(hydra_cfg.sweep.dir).parts[-3:])  # <task_name>/multiruns/<time>
    return group, f"{hydra_cfg.job.num}: " + " ".join(hydra_cfg.overrides.task)[:100]


class WandbLogger(LightningWandbLogger):
    def __init__(self, *, name: str | None = None, group: str | None = None, **kwargs):
        os.environ.setdefault("WANDB_SILENT", "true")  # no banners; the lines below say what matters
        reason = offline_reason()
        if reason:
            log.warning("W&B runs offline: %s", reason)
            os.environ["WANDB_MODE"] = "offline"  # W&B's own offline mode: artifacts too are kept for `wandb sync`
        job = _multirun_job()
        if job:
            group, name = group or job[0], name or job[1]
        super().__init__(name=name, group=group, **kwargs)
        # Lightning passes anonymous=None, which W&B answers with a deprecation warning on every run.
        self._wandb_init.pop("anonymous", None)

    def finish(self, failed: bool = False) -> None:
        """End the W&B run (the next multirun job starts a new one); say how to upload an offline run."""
        if self._experiment is None:  # never started, or not rank 0
            return
        run, self._experiment = self._experiment, None
        offline = run.offline
        run.finish(exit_code=1 if failed else 0)
        if offline:
            log.warning("W&B run saved offline; upload it with: wandb sync %s", Path(run.dir).parent)


def finish_runs(loggers: list, failed: bool = False) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.finish(failed)


class WandbPanels(Callback):
    """With a kp WandbLogger among the trainer's loggers (else it does nothing): a picture of predictions against
    the ground truth on the first validation batch every `images_every_n_epochs` validation epochs, and in the run
    summary best/<metric> for every overall validation metric (highest PCK, lowest of the rest)."""

    def __init__(self, images_every_n_epochs: int = 5, num_images: int = 8):
        self.images_every_n_epochs, self.num_images = images_every_n_epochs, num_images
        self.validation_epochs = 0
        self.best: dict[str, float] = {}

    @staticmethod
    def _logger(trainer) -> WandbLogger | None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return None
        return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        logger = self._logger(trainer)
        if logger is None or batch_idx != 0 or self.validation_epochs % self.images_every_n_epochs:
            return
        images = batch["image"][: self.num_images]
        pred, _ = pl_module.locate(images, flip=pl_module.flip_test)
        path = plot_predictions(
            images.float().cpu(),
            batch["keypoints"][: self.num_images].cpu(),
            batch["visible"][: self.num_images].cpu(),
            pred.float().cpu(),
            pl_module.meta,
            Path(trainer.default_root_dir) / "val_predictions.png",
        )
        logger.log_image(
            "val/predictions", [str(path)], step=trainer.global_step, caption=[f"epoch {trainer.current_epoch}"]
        )

    def on_validation_end(self, trainer, pl_module):
        # After the module logged the epoch's metrics (the callbacks' on_validation_epoch_end runs before them).
        logger = self._logger(trainer)
        if logger is None:
            return
        self.validation_epochs += 1
        for key, value in trainer.callback_metrics.items():
            if not key.startswith("val/") or key.count("/") != 1:  # overall values only, not per keypoint
                continue
            better = max if key.startswith("val/pck") else min
            self.best[key] = better(self.best.get(key, float(value)), float(value))
            logger.experiment.summary[f"best/{key}"] = self.best[key]
