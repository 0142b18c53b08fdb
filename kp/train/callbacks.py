"""Training callbacks of kp's own (the config group callbacks/ lists them with Lightning's).

ResumableCheckpoint: a ModelCheckpoint that remembers the best score across a resume. A resumed run writes to a new
run directory. Lightning's ModelCheckpoint drops the best score and the top-k list when its directory differs from the
checkpoint's, so after `ckpt_path=last` any new epoch would count as the best, even a worse one, and the test metrics
and the sweep objective would come from it. This one restores them whatever the directory. The earlier run's files
stay untouched: Lightning only ever deletes checkpoints inside its own dirpath.

FreezePretrained: fine-tuning a pretrained backbone: its layers are frozen for the first model.freeze_epochs epochs,
so that the new, randomly initialised decoder and heads settle before their large early gradients reach the ImageNet
features. While frozen, the pretrained BatchNorm layers are in eval mode too (they keep ImageNet's statistics).

WeightEMA: an exponential moving average of the weights and the BatchNorm statistics (Lightning's EMAWeightAveraging),
which validation, the checkpoints, the test and the evaluation report use in place of the raw weights: it smooths the
step-to-step noise out of what a run keeps (kp/conf/callbacks/weight_ema.yaml says what it measured).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.callbacks.weight_averaging import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class ResumableCheckpoint(ModelCheckpoint):
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})


class FreezePretrained(Callback):
    """Reads the net's `freeze_epochs` and `pretrained_modules()`: a no-op for nets without pretrained layers."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        frozen = trainer.current_epoch < getattr(net, "freeze_epochs", 0)
        for module in net.pretrained_modules():
            module.train(not frozen)
            for parameter in module.parameters():
                parameter.requires_grad_(not frozen)


class WeightEMA(EMAWeightAveraging):
    """A checkpoint holds the average as its `state_dict` (what kp.load and `trainer.test` read) and the raw weights
    under `current_model_state` (what a resumed run continues from)."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Lightning's version also runs when `trainer.test(ckpt_path=best)` loads the best checkpoint after fit, and
        # then puts the raw weights back: the test would score the raw weights, not the average that was chosen.
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
