"""Fine-tuning a pretrained backbone: its layers are frozen for the first model.freeze_epochs epochs, so that the new,
randomly initialised decoder and heads settle before their large early gradients reach the ImageNet features. While
frozen, the pretrained BatchNorm layers are in eval mode too (they keep ImageNet's statistics)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback


class FreezePretrained(Callback):
    """Reads the net's `freeze_epochs` and `pretrained_modules()`: a no-op for nets without pretrained layers."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        frozen = trainer.current_epoch < getattr(net, "freeze_epochs", 0)
        for module in net.pretrained_modules():
            module.train(not frozen)
            for parameter in module.parameters():
                parameter.requires_grad_(not frozen)
