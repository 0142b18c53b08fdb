"""Where a training step's time goes, per preset: `python scripts/benchmark_training.py [--steps 30] [preset ...]
[-- override ...]`; default presets facial68, cards, dlc and mirror_mouse.

Each preset is composed as `kp train experiment=<preset>` would, then fitted for `--steps` training steps as train.py
fits it (its callbacks, progress bar and CSV logger; no validation and no checkpoints, which happen once per epoch).
Printed per preset:
  - start-up s: from composing the config to the first training step; `data` is the datamodule's part (reading the
    labels, the splits, face detection where the preset crops faces), the rest builds the model and starts the Trainer
    and the DataLoader workers;
  - images/s of training, and of the training DataLoader read alone (decoding + augmentation, with the preset's
    workers);
  - per image, in the main process: the loader's `load` (decoding, crop, resize) and the augmentation (`transform`);
  - per step (medians): waiting for the batch, forward (with the codec and the loss), backward, optimiser (with the
    hooks around it), and the rest between one step's end and the next step's start less the wait (logging, progress
    bar).
The first steps (`--warmup`) are not timed. On a GPU the device is synchronised at each mark. Each row starts as a new
process would (the loaders' in-process caches emptied). Each preset gets two rows in the same run, before and now:
before with the default memory layout (`channels_last=false`) and, for facial68, a first start with an empty face-box
cache of the run's own, which detects every face as every start did before the boxes were kept on disk
(kp.data.faces.FaceDetector.in_files); now with channels-last weights and images (the default) and the boxes read
back. `--now-only` times only the second; `--compile` adds a third row with the network in torch.compile, whose
compilation is in the "first step" column (the steps timed come after it).

Unlabelled video (a preset with loss terms that need no labels, such as mirror_mouse_semi): its start-up includes
decoding the videos into the clip cache (kp.data.unlabelled; the log line says how many frames), images/s counts the
labelled images, and forward/backward include the clips' frames. Compare `mirror_mouse mirror_mouse_semi --now-only`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import CombinedLoader
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.build import build  # noqa: E402
from kp.config import compose_config  # noqa: E402
from kp.data import cards, dlc, facial, facial68  # noqa: E402
from kp.train.quiet import quiet  # noqa: E402

PRESETS = ("facial68", "cards", "dlc", "mirror_mouse")
PHASES = ("wait", "forward", "backward", "optimizer", "rest")
# The rows of each preset: before (the default memory layout; facial68's faces detected at the start, as every start
# did before the boxes were kept on disk) and now (channels-last; the boxes read back).
BEFORE_AND_NOW = [("before (default layout, faces detected)", "false"), ("now (channels-last, cached boxes)", "true")]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer(Callback):
    """Timestamps of each training step's marks: batch start, before backward, after backward, batch end; and the
    number of images in each batch."""

    def __init__(self):
        self.marks: list[dict[str, float]] = []
        self.images: list[int] = []

    def _mark(self, pl_module, name: str) -> None:
        _sync(pl_module.device)
        if name == "start":
            self.marks.append({})
        self.marks[-1][name] = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.images.append(len(labelled(batch)["image"]))
        self._mark(pl_module, "start")

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._mark(pl_module, "backward")

    def on_after_backward(self, trainer, pl_module) -> None:
        self._mark(pl_module, "optimizer")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._mark(pl_module, "end")


def labelled(batch: dict) -> dict:
    """The labelled batch of a training batch, which carries clips of unlabelled video beside it with
    data.unlabelled (kp.data.datamodule's CombinedLoader): the images/s count labelled images."""
    return batch.get("labelled", batch)


class TimedLoader(DataLoader):
    """A DataLoader that adds up the time the training loop waits in next() for its batches."""

    waits: list[float]

    def __iter__(self):
        batches = super().__iter__()
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - start)
            yield batch


@dataclass
class FitTiming:
    """What `timed_fit` measured: seconds to set up the data and to reach the first step, training images/s, the
    per-step medians of PHASES (seconds), and the images/s of the DataLoader alone."""

    data_s: float
    startup_s: float
    images_per_s: float
    phases: dict[str, float] = field(default_factory=dict)
    loader_images_per_s: float = float("nan")
    batch_size: int = 0
    first_step_s: float = float("nan")  # with torch.compile, the compilation
    load_s: float = float("nan")  # per image: the dataset's load (decoding, crop, resize), and its augmentation
    augment_s: float = float("nan")


def short_fit_config(overrides: list[str], steps: int, output_dir: Path) -> DictConfig:
    """The composed config of `overrides`, fitting `steps` steps with no validation, checkpoint or report."""
    cfg = compose_config(
        [
            *overrides,
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            "callbacks.model_checkpoint=null",
            "callbacks.last_checkpoint=null",
        ]
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
    return cfg


def timed_fit(
    cfg: DictConfig,
    warmup: int,
    loader_batches: int = 0,
    datamodule=None,
    cost_images: int = 0,
    compiled: bool = False,
) -> FitTiming:
    """Build (the data part timed on its own) and fit `cfg` with a PhaseTimer; loader_batches > 0 also reads that
    many batches of the training DataLoader alone, before the fit. datamodule: one already set up from cfg.data, to
    fit again (its set-up then counts nothing). cost_images > 0: also time that many images' load and augmentation
    one by one (per_image_costs). compiled: the network wrapped in torch.compile (its compilation falls in the
    first step)."""
    start = time.perf_counter()
    if datamodule is None:
        datamodule = instantiate(cfg.data)
        datamodule.setup()
    data_s = time.perf_counter() - start
    datamodule, module = build(cfg, datamodule)
    if compiled:
        module.net = torch.compile(module.net)
    built_s = time.perf_counter() - start
    loader_rate = loader_images_per_second(datamodule, loader_batches) if loader_batches else float("nan")
    costs = per_image_costs(datamodule.splits["train"], cost_images) if cost_images else (float("nan"),) * 2
    waits: list[float] = []
    inner_loaders = [1]  # DataLoaders waited on per step: 2 with unlabelled clips
    make_loader = datamodule.train_dataloader

    def timed_loader() -> DataLoader | CombinedLoader:
        loader = make_loader()
        # With unlabelled clips, both loaders of the CombinedLoader are waited on, in turn, once per step.
        inners = loader.flattened if isinstance(loader, CombinedLoader) else [loader]
        for inner in inners:
            inner.__class__, inner.waits = TimedLoader, waits
        inner_loaders[0] = len(inners)
        return loader

    datamodule.train_dataloader = timed_loader
    timer = PhaseTimer()
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c] + [timer]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    fit_start = time.perf_counter()
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        del datamodule.train_dataloader  # the class's own again, for another fit
    return FitTiming(
        data_s=data_s,
        startup_s=built_s + (timer.marks[0]["start"] - fit_start if timer.marks else float("nan")),
        images_per_s=_images_per_second(timer, warmup),
        phases=_phase_medians(timer, waits, warmup, inner_loaders[0]),
        loader_images_per_s=loader_rate,
        batch_size=timer.images[0] if timer.images else 0,
        first_step_s=timer.marks[0]["end"] - timer.marks[0]["start"] if timer.marks else float("nan"),
        load_s=costs[0],
        augment_s=costs[1],
    )


def _images_per_second(timer: PhaseTimer, warmup: int) -> float:
    """Images over the time from the first timed step's start to the last step's end."""
    marks, images = timer.marks[warmup:], timer.images[warmup:]
    if len(marks) < 1:
        return float("nan")
    return sum(images) / (marks[-1]["end"] - marks[0]["start"])


def _phase_medians(timer: PhaseTimer, waits: list[float], warmup: int, per_step: int = 1) -> dict[str, float]:
    """Medians over the timed steps: the wait for a batch is the one fetched just before the step started (per_step
    waits each: the labelled batch and the clips); the rest is what remains of the gap between the previous step's
    end and this one's start."""
    rows = []
    for i in range(max(warmup, 1), len(timer.marks)):
        step, before = timer.marks[i], timer.marks[i - 1]
        wait = sum(waits[i * per_step : (i + 1) * per_step])
        rows.append(
            {
                "wait": wait,
                "forward": step["backward"] - step["start"],
                "backward": step["optimizer"] - step["backward"],
                "optimizer": step["end"] - step["optimizer"],
                "rest": max(0.0, step["start"] - before["end"] - wait),
            }
        )
    return {phase: statistics.median(row[phase] for row in rows) if rows else float("nan") for phase in PHASES}


def loader_images_per_second(datamodule, batches: int) -> float:
    """Images/s of the training DataLoader read alone for `batches` batches, the first (worker start-up) not
    counted; as many epochs as that takes."""
    loader, seen, start, read = datamodule.train_dataloader(), 0, None, 0
    while read <= batches:
        for batch in loader:
            if start is None:
                start = time.perf_counter()
            else:  # a CombinedLoader (unlabelled clips) yields (batch, index, loader index)
                seen += len(labelled(batch[0] if isinstance(loader, CombinedLoader) else batch)["image"])
            read += 1
            if read > batches:
                break
    return seen / (time.perf_counter() - start) if seen else float("nan")


def per_image_costs(dataset, images: int) -> tuple[float, float]:
    """Seconds per image (medians over `images` samples) of the dataset's `load` and of its transform."""
    loads, augments = [], []
    for index in range(min(images, len(dataset))):
        start = time.perf_counter()
        raw = dataset.load(index)
        loaded = time.perf_counter()
        if dataset.transform is not None:
            dataset.transform(raw.image, raw.keypoints, raw.visible, dataset.meta)
        loads.append(loaded - start)
        augments.append(time.perf_counter() - loaded)
    return statistics.median(loads), statistics.median(augments)


def fresh_start() -> None:
    """Forget what the loaders keep in the process (labels read, frames hashed, faces detected), as a new `kp train`
    process would: each row's start-up is a first start's (disk caches, such as the face boxes, stay)."""
    for loader in (cards._read_frames, dlc._read_frames, dlc._look_alikes, facial._load_training):
        loader.cache_clear()
    facial68._detect_faces.cache_clear()
    facial68._read_labels.cache_clear()


def measure(preset: str, options, label: str, settings: list[str], compiled: bool = False) -> dict:
    """One row: the preset's short fit with `settings` (its network compiled or not), its loader alone, and its
    per-image costs."""
    fresh_start()
    with tempfile.TemporaryDirectory() as out:
        cfg = short_fit_config([f"experiment={preset}", *settings, *options.overrides], options.steps, Path(out))
        timing = timed_fit(cfg, options.warmup, options.steps, cost_images=options.images, compiled=compiled)
    return {"preset": label, **timing.__dict__}


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| preset | batch | start-up s (data) | first step s | train img/s | loader img/s | load ms/img | "
        "augment ms/img | wait ms/step | forward ms | backward ms | optimiser ms | rest ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        phases = " | ".join(f"{row['phases'][phase] * 1000:.0f}" for phase in PHASES)
        lines.append(
            f"| {row['preset']} | {row['batch_size']} | {row['startup_s']:.1f} ({row['data_s']:.1f}) | "
            f"{row['first_step_s']:.1f} | {row['images_per_s']:.1f} | {row['loader_images_per_s']:.1f} | "
            f"{row['load_s'] * 1000:.1f} | {row['augment_s'] * 1000:.1f} | {phases} |"
        )
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="*", default=list(PRESETS), help="experiment presets")
    parser.add_argument("--steps", type=int, default=30, help="training steps per preset")
    parser.add_argument("--warmup", type=int, default=5, help="first steps not timed")
    parser.add_argument("--images", type=int, default=32, help="images timed one by one for load and augment")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every preset")
    parser.add_argument("--now-only", action="store_true", help="only the row of the current settings")
    parser.add_argument("--compile", action="store_true", help="also a row with the network in torch.compile")
    options = parser.parse_args(argv)
    quiet()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        # An empty face-box cache of this run's own: the first facial68 start detects every face, as every start
        # did before the boxes were kept on disk; the next reads them back.
        saved = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            for preset in options.presets:
                for label, layout in BEFORE_AND_NOW[options.now_only :]:
                    rows.append(measure(preset, options, f"{preset}, {label}", [f"channels_last={layout}"]))
                if options.compile:
                    rows.append(measure(preset, options, f"{preset}, now + torch.compile", [], compiled=True))
        finally:
            os.environ.pop("XDG_CACHE_HOME") if saved is None else os.environ.update(XDG_CACHE_HOME=saved)
    for line in table(rows):
        print(line)
    return rows


if __name__ == "__main__":
    main()
