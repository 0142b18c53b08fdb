"""KeypointModule: network + target codec + named loss terms + metrics, trained by Lightning.

The codec runs here, on whole batches on the model's device: the DataLoader only carries images and pixel keypoints.
With unlabelled video (data.unlabelled and a loss with terms of kp.unsupervised_losses), each training batch is
{"labelled": batch, "unlabelled": clips}: the net also runs on the clips' frames, their keypoints come out
differentiable (`differentiable_keypoints`), and each such term adds weight_at(epoch) × its value.

Logged names: <split>/loss, <split>/loss_<term> (the unlabelled terms: train only, once past their warm-up start),
and for val/test <split>/rmse, <split>/nme, <split>/pck_<t> (each also per keypoint as <metric>/<keypoint name>),
<split>/count_mae and <split>/nme_count (kp.metrics.nme_plus_count) when the model predicts a count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import MeanAbsoluteError

from kp.calibration import difficulty
from kp.codecs import flip_test, soft_argmax
from kp.data.base import KeypointMeta
from kp.defaults import PCK_THRESHOLDS
from kp.errors import NonFiniteLossError
from kp.losses import LossTerm
from kp.metrics import NME, PCK, KeypointRMSE, nme_plus_count, pair_distance
from kp.unsupervised_losses import UnlabelledTerm


@dataclass
class DecodedBatch:
    """KeypointModule.locate_details: keypoints B×K×2 (input pixels), scores B×K, difficulty B×K (input pixels)
    and the network's outputs for the images themselves (count, visibility)."""

    keypoints: torch.Tensor
    scores: torch.Tensor
    difficulty: torch.Tensor
    outputs: dict[str, torch.Tensor]


class KeypointModule(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        codec,
        losses: Mapping[str, LossTerm],
        meta: KeypointMeta,
        input_size: tuple[int, int],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        pck_thresholds: tuple[float, ...] = PCK_THRESHOLDS,
        pck_norm: str = "image",
        flip_test: bool = False,
        spec: dict | None = None,
        channels_last: bool = False,
    ):
        """optimizer: a partial torch optimizer taking `params`; None for a module that only predicts (kp.load).
        pck_norm: "image" (the input's longer side) or "pair" (the distance of meta.norm_pair, like NME).
        flip_test: validation and test locate keypoints with test-time flip (`locate`; the config's metrics.flip);
        off where the flip pairs are unknown (the datamodule's log says so and how to declare them). spec: the
        kp.build.InferenceSpec as a dict, saved in every checkpoint so that kp.load can rebuild the model on its own.
        channels_last: weights and images in the channels-last memory layout, which trains the presets 1.06 to 1.29
        times faster on CPU (docs: Benchmarks); the results are the same up to float rounding."""
        super().__init__()
        self.net, self.codec, self.meta = net, codec, meta
        self.flip_test, self.spec = flip_test and meta.flip_pairs is not None, spec
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.losses = nn.ModuleDict(losses)
        self.input_size = tuple(input_size)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.build_metrics(pck_thresholds, pck_norm)

    def build_metrics(
        self, pck_thresholds: tuple[float, ...] = PCK_THRESHOLDS, pck_norm: str = "image", sync_on_compute: bool = True
    ) -> None:
        """Make the val and test metric objects (empty; not a Lightning hook). kp.evaluation.evaluate makes them as
        the run's config had them, without the sync across DDP processes (sync_on_compute=False): its report is one
        process's pass over the whole split."""
        if pck_norm not in ("image", "pair"):
            raise ValueError(f"pck_norm must be 'image' or 'pair', got {pck_norm!r}")
        if pck_norm == "pair" and self.meta.norm_pair is None:
            raise ValueError("pck_norm=pair needs a dataset with a normalising keypoint pair (meta.norm_pair)")
        self.pck_thresholds, self.pck_norm = tuple(pck_thresholds), pck_norm
        k = self.meta.num_keypoints
        # ModuleDict keys cannot hold the dot of "pck_0.05": metric i is logged as self.metric_names[i].
        self.metric_names = ["rmse", "nme", *(f"pck_{t:g}" for t in self.pck_thresholds)]
        sync = {"sync_on_compute": sync_on_compute}
        self.metrics = nn.ModuleDict(
            {
                split: nn.ModuleList(
                    [KeypointRMSE(k, **sync), NME(k, **sync), *(PCK(k, t, **sync) for t in self.pck_thresholds)]
                )
                for split in ("val", "test")
            }
        )
        self.count_mae = nn.ModuleDict({split: MeanAbsoluteError(**sync) for split in ("val", "test")})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def locate(
        self, images: torch.Tensor, flip: bool = False, outputs: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The one way from preprocessed images B×C×H×W to (keypoints B×K×2 in input pixels, scores B×K): test,
        prediction, submission, the W&B panels and export all come here (through `locate_details`). flip: test-time
        flip (kp.codecs.flip_test; the score then includes the agreement of the image's and its mirror's
        predictions). outputs: the network's outputs for `images` where the caller already has them (validation
        computes them for the loss)."""
        prediction = self.locate_details(images, flip, outputs)
        return prediction.keypoints, prediction.scores

    def locate_details(
        self, images: torch.Tensor, flip: bool = False, outputs: dict[str, torch.Tensor] | None = None
    ) -> DecodedBatch:
        """`locate`, plus what evaluation and calibrated uncertainty need: the per-keypoint difficulty in input
        pixels (kp.calibration.difficulty, from the prediction's spread, combined with the flip disagreement under
        flip test, and the scores; kp.calibration scales it into a radius) and the network's outputs for the image
        itself."""
        outputs = self(images) if outputs is None else outputs
        if not flip:
            keypoints, scores = self.codec.decode(outputs)
            return DecodedBatch(keypoints, scores, difficulty(self.codec.spread(outputs), scores), outputs)
        mirrored = self(images.flip(-1))
        keypoints, scores, disagreement = flip_test(self.codec, outputs, mirrored, self.meta.flip_permutation())
        spread = (self.codec.spread(outputs) ** 2 + disagreement**2).sqrt()  # not hypot: it does not export to ONNX
        return DecodedBatch(keypoints, scores, difficulty(spread, scores), outputs)

    def differentiable_keypoints(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(keypoints B×K×2 in input pixels, scores B×K) that pass gradients back to the net, for the loss terms that
        need no labels: the soft-argmax of the heatmaps, or the coordinates codec's decode (differentiable as is)."""
        if self.codec.name == "heatmap":
            return soft_argmax(outputs["keypoints"], self.codec.stride)
        return self.codec.decode(outputs)

    def _loss(self, outputs: dict, batch: dict, split: str, clips: torch.Tensor | None = None) -> torch.Tensor:
        """The supervised terms on the labelled batch, plus the unlabelled terms on `clips` B×T×C×H×W (training)."""
        targets = self.codec.encode(batch["keypoints"], batch["visible"])
        targets["visible"] = batch["visible"]
        if "count" in batch:
            targets["count"] = batch["count"]
        values, total = {}, 0.0
        for name, term in self.losses.items():
            if not isinstance(term, UnlabelledTerm):
                values[name] = term(outputs, targets)
                total = total + term.weight * values[name]
        if clips is not None:
            for name, (weight, value) in self._unlabelled_losses(clips).items():
                values[name] = value
                total = total + weight * value
        for name, value in values.items():
            self.log(
                f"{split}/loss_{name}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=len(batch["image"]),
                sync_dist=True,
            )
        self.log(
            f"{split}/loss",
            total,
            prog_bar=split == "train",
            on_step=split == "train",
            on_epoch=True,
            batch_size=len(batch["image"]),
            sync_dist=True,
        )  # averaged over DDP processes
        return total

    def _unlabelled_losses(self, clips: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """Each unlabelled term's (weight at this epoch, value) on the clips' keypoints B×T×K×2; none while every
        term is still in its warm-up (the clips then cost no forward pass)."""
        terms = {name: term for name, term in self.losses.items() if isinstance(term, UnlabelledTerm)}
        weights = {name: term.weight_at(self.current_epoch) for name, term in terms.items()}
        if not any(weights.values()):
            return {}
        keypoints, scores = self.differentiable_keypoints(self(clips.flatten(0, 1)))
        keypoints, scores = keypoints.unflatten(0, clips.shape[:2]), scores.unflatten(0, clips.shape[:2])
        return {name: (weights[name], term(keypoints, scores)) for name, term in terms.items()}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        clips = None
        if "unlabelled" in batch:  # the datamodule's CombinedLoader (data.unlabelled)
            batch, clips = batch["labelled"], batch["unlabelled"]
        loss = self._loss(self(batch["image"]), batch, "train", clips)
        if not torch.isfinite(loss):
            # Stop before the optimiser applies it: no later checkpoint overwrites the last good one.
            checkpoints = getattr(self.trainer.checkpoint_callback, "dirpath", None) or "none saved"
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(batch {batch_idx}); try a lower optimizer.lr or gradient clipping (trainer.gradient_clip_val). "
                f"The checkpoints of the epochs before are kept in {checkpoints}"
            )
        return loss

    def _evaluate(self, batch: dict, split: str) -> None:
        outputs = self(batch["image"])
        self._loss(outputs, batch, split)
        pred, _ = self.locate(batch["image"], flip=self.flip_test, outputs=outputs)
        self.update_metrics(split, pred, batch, outputs)

    def update_metrics(self, split: str, pred: torch.Tensor, batch: dict, outputs: dict[str, torch.Tensor]) -> None:
        """Add a batch's predictions (input pixels) to the split's metrics: validation, test and
        kp.evaluation.evaluate."""
        target, visible = batch["keypoints"], batch["visible"]
        nme_norm, pck_norm = self.normalising_lengths(target, visible)
        for name, metric in zip(self.metric_names, self.metrics[split]):
            metric.update(pred, target, visible, nme_norm if name == "nme" else pck_norm)
        if "count" in outputs and "count" in batch:
            scale = self.meta.count_scale or 1.0
            self.count_mae[split].update(outputs["count"].float() * scale, batch["count"] * scale)

    def normalising_lengths(self, target: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample lengths (B) that NME and PCK (and RMSE's sample selection) divide by: the normalising pair's
        distance (NaN where it is not visible) or the input's longer side, as pck_norm and meta.norm_pair say."""
        longer_side = torch.full((len(target),), float(max(self.input_size)), device=target.device)
        pair_norm = pair_distance(target, visible, self.meta.norm_pair) if self.meta.norm_pair else longer_side
        return pair_norm, pair_norm if self.pck_norm == "pair" else longer_side

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def compute_metrics(self, split: str) -> dict[str, torch.Tensor]:
        """The split's metrics as logged (`<split>/<metric>` and `<split>/<metric>/<keypoint>`); resets them."""
        results = {}
        for name, metric in zip(self.metric_names, self.metrics[split]):
            result = metric.compute()
            results[f"{split}/{name}"] = result["overall"]
            for keypoint, value in zip(self.meta.names, result["per_keypoint"]):
                results[f"{split}/{name}/{keypoint}"] = value
            metric.reset()
        if self.count_mae[split].update_called:
            results[f"{split}/count_mae"] = self.count_mae[split].compute()
            scale = self.meta.count_scale or 1.0  # count_mae counts items (cards); nme_count takes a share of the whole
            results[f"{split}/nme_count"] = nme_plus_count(
                results[f"{split}/nme"], results[f"{split}/count_mae"], scale
            )
            self.count_mae[split].reset()
        return results

    def _log_metrics(self, split: str) -> None:
        # compute() already gathers every DDP process's state, so all processes log the same values; sync_dist
        # (a mean of equal numbers) only spares Lightning's warning about unsynced epoch-level values.
        for key, value in self.compute_metrics(split).items():
            self.log(key, value, prog_bar=key.count("/") == 1 and "/pck" in key, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.spec is not None:
            checkpoint["kp"] = self.spec  # what kp.load needs to use this checkpoint on its own
        # Lightning keeps epoch, step, optimiser and scheduler; the random streams make a resumed run continue
        # with the same shuffling and augmentation as an uninterrupted one.
        name, keys, position, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            # plain lists: checkpoints load with torch.load(weights_only=True)
            "numpy": [name, keys.tolist(), position, has_gauss, cached],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            torch.set_rng_state(checkpoint["rng_states"]["torch"])
            name, keys, position, has_gauss, cached = checkpoint["rng_states"]["numpy"]
            np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
            random.setstate(checkpoint["rng_states"]["python"])

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise RuntimeError("this KeypointModule was built to predict (kp.load): it has no optimizer to train with")
        optimizer = self.optimizer_factory(params=self.net.parameter_groups())
        for group in optimizer.param_groups:  # pretrained backbone layers learn slower than the new head
            group["lr"] *= group.get("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}
