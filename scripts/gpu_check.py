"""What a lent GPU gives kp, in under five minutes: `python scripts/gpu_check.py [preset ...] [--steps 200]
[--budget 270] [--overrides key=value ...]`; default presets facial, facial68, cards, dlc, mirror_mouse and
mirror_mouse_semi.

1. CUDA: whether torch sees it, each device's name and memory, whether it does bf16.
2. Per preset (composed as `kp train experiment=<preset> trainer=gpu`): training images/s over `--steps` steps with
   precision=32 and with precision=bf16-mixed, and the training DataLoader's images/s read alone (decoding and
   augmentation with the preset's workers): a loader slower than training starves the GPU. Timed as
   scripts/benchmark_training.py times a step; each preset's data is set up once for all its fits. A preset whose data
   folder is absent is skipped and said so.
3. A preset with unlabelled clips (loss terms that need no labels, such as mirror_mouse_semi): the two precisions
   with every such term kept in its warm-up (the clips are loaded, never run through the net: a supervised step), then
   a third fit in bf16-mixed with the terms on from the first step (warmup_start=0): the net also runs forward and
   backward on the clips' frames. Images/s count the labelled images in both; the data set-up includes decoding the
   videos into the clip cache.
4. With two GPUs or more: the first preset's images/s under DDP on two (trainer=ddp; its clips unused, where it has
   any), in a child process of this script (Lightning starts the second rank by running the same command again), and
   the first preset with clips' (bf16-mixed, clips on: each rank its own clips).

Without CUDA it runs the same code on the CPU with a tiny model (model=simple_cnn), a few steps each, and prints what
it skipped: a check of the code paths, not of speed. A measurement that would start after `--budget` seconds is
skipped and said so. `--ddp` runs the DDP steps on the CPU too (trainer=ddp_cpu, two processes).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_training import short_fit_config, timed_fit

from kp.config import compose_config
from kp.train.quiet import quiet

PRESETS = ("facial", "facial68", "cards", "dlc", "mirror_mouse", "mirror_mouse_semi")
TINY = ["model=simple_cnn"]  # the CPU stand-in: every preset's data and target, a small network
CPU_CLIPS = ["data.unlabelled.frames=64"]  # on the CPU, a few clips decoded (the whole video on a GPU)
QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]  # a readable log (the bar costs little)
PRECISIONS = ("32", "bf16-mixed")
CLIPS = "bf16-mixed + clips"  # the fit with the unlabelled terms on from the first step
NEVER = 10**6  # a warm-up start no short fit reaches: the clips are loaded, not used
DATA_KEYS = ("root", "project", "path", "ann_file")  # where a dataset config names its files
DDP_MARK = "DDP images/s: "


def cuda_report() -> list[str]:
    if not torch.cuda.is_available():
        return [f"CUDA: not available (torch {torch.__version__}, built for CUDA {torch.version.cuda})"]
    lines = [f"CUDA: {torch.cuda.device_count()} device(s), torch {torch.__version__}, CUDA {torch.version.cuda}"]
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        lines.append(
            f"  cuda:{index} {properties.name}, {properties.total_memory / 2**30:.0f} GiB, "
            f"compute capability {properties.major}.{properties.minor}, bf16: {torch.cuda.is_bf16_supported()}"
        )
    return lines


def unlabelled_terms(cfg) -> list[str]:
    """The loss terms of a composed config that need no labels (kp.unsupervised_losses): they train on clips."""
    return [name for name, term in cfg.loss.items() if str(term.get("_target_", "")).startswith("kp.unsupervised")]


def clip_overrides(terms: list[str], start: int) -> list[str]:
    """The terms' warm-up start: 0 runs them on the clips from the first step, NEVER keeps them off."""
    return [f"loss.{term}.warmup_start={start}" for term in terms]


def absent_data(cfg) -> str | None:
    """The preset's data folder or file where it is absent (a machine without ../shared/data), else None."""
    dataset = cfg.data.dataset
    for key in DATA_KEYS:
        if key in dataset and isinstance(dataset[key], str) and not Path(dataset[key]).exists():
            return dataset[key]
    return None


def preset_row(preset: str, options, device_overrides: list[str], out: Path) -> dict:
    """Training images/s at each precision and the loader's images/s, for one preset; with unlabelled terms, the
    precisions with the clips unused and bf16-mixed with them (the module docstring)."""
    base = [f"experiment={preset}", *device_overrides]
    terms = unlabelled_terms(compose_config([*base, *options.overrides]))
    row, datamodule = {"preset": preset, "terms": terms}, None
    fits = [(precision, [f"precision={precision}", *clip_overrides(terms, NEVER)]) for precision in PRECISIONS]
    fits += [(CLIPS, ["precision=bf16-mixed", *clip_overrides(terms, 0)])] if terms else []
    for label, settings in fits:
        cfg = short_fit_config([*base, *settings, *options.overrides], options.steps, out / label.replace(" ", ""))
        if datamodule is None:
            datamodule = instantiate(cfg.data)
            start = time.perf_counter()
            datamodule.setup()
            if terms:  # the videos decoded into the clip cache, once for every fit
                clips = datamodule.unlabelled_clips()
                row["clip_frames"] = clips.clip_length * cfg.data.unlabelled.get("clips_per_step", 1)
            row["data_s"] = time.perf_counter() - start
        loader_batches = options.steps if label == PRECISIONS[0] else 0
        timing = timed_fit(cfg, options.warmup, loader_batches, datamodule)
        row[label] = timing.images_per_s
        row["batch"] = timing.batch_size
        if loader_batches:
            row["loader"] = timing.loader_images_per_s
    return row


def ddp_images_per_second(preset: str, options, trainer: str, settings: list[str]) -> float:
    """The preset's training images/s on two processes, from a child run of this script (NaN where it failed);
    settings: overrides of this measurement (the clips on)."""
    command = [sys.executable, __file__, "--ddp-child", preset, "--steps", str(options.steps)]
    command += ["--warmup", str(options.warmup), "--overrides", f"trainer={trainer}", *options.tiny, *settings]
    command += options.overrides
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    found = [line for line in done.stdout.splitlines() if line.startswith(DDP_MARK)]
    if done.returncode or not found:
        print(f"DDP run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return float("nan")
    return float(found[0][len(DDP_MARK) :])


def ddp_child(preset: str, options) -> None:
    """Run by ddp_images_per_second: every rank fits; rank 0 prints the images/s of all ranks together."""
    with tempfile.TemporaryDirectory() as out:
        cfg = short_fit_config([f"experiment={preset}", *options.overrides], options.steps, Path(out))
        timing = timed_fit(cfg, options.warmup)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        print(f"{DDP_MARK}{timing.images_per_s * cfg.trainer.devices}", flush=True)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| preset | batch | data set-up s | train img/s fp32 | train img/s bf16-mixed | bf16/fp32 | loader img/s "
        "| clip frames/step | train img/s bf16-mixed + clips | clips/without |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = row["bf16-mixed"] / row["32"] if row["32"] else math.nan
        clips = "| - | - | - |"
        if row["terms"]:
            share = row[CLIPS] / row["bf16-mixed"] if row["bf16-mixed"] else math.nan
            clips = f"| {row['clip_frames']} | {row[CLIPS]:.1f} | {share:.2f} |"
        lines.append(
            f"| {row['preset']} | {row['batch']} | {row['data_s']:.1f} | {row['32']:.1f} | {row['bf16-mixed']:.1f} "
            f"| {ratio:.2f} | {row['loader']:.1f} {clips}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="*", default=list(PRESETS), help="experiment presets")
    parser.add_argument("--steps", type=int, default=200, help="training steps per preset and precision (GPU)")
    parser.add_argument("--warmup", type=int, default=10, help="first steps not timed (GPU)")
    parser.add_argument("--budget", type=float, default=270, help="seconds after which no measurement starts")
    parser.add_argument("--ddp", action="store_true", help="also run the DDP step without two GPUs (on the CPU)")
    parser.add_argument("--ddp-child", help=argparse.SUPPRESS)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every run")
    options = parser.parse_args(argv)
    options.tiny = []
    options.overrides = [*QUIET, *options.overrides]
    quiet()
    if options.ddp_child:
        ddp_child(options.ddp_child, options)
        return {}
    start = time.perf_counter()
    for line in cuda_report():
        print(line)
    gpus = torch.cuda.device_count()
    skipped = []
    if gpus:
        device_overrides = ["trainer=gpu"]
    else:
        options.tiny = [*TINY, *CPU_CLIPS]
        device_overrides = ["trainer=cpu", *options.tiny]
        options.steps, options.warmup = min(options.steps, 6), min(options.warmup, 1)
        skipped.append(
            f"GPU speed: no CUDA, so each preset ran {options.steps} steps on the CPU with {' '.join(TINY)} "
            "(code paths only; the figures say nothing about a GPU)"
        )
    rows = []
    for preset in options.presets:
        if time.perf_counter() - start > options.budget:
            skipped.append(f"{preset}: the {options.budget:g} s budget was spent")
            continue
        absent = absent_data(compose_config([f"experiment={preset}", *device_overrides, *options.overrides]))
        if absent:
            skipped.append(
                f"{preset}: its data {absent} is absent (../shared/data beside the checkout, or KP_DATA_DIR)"
            )
            continue
        with tempfile.TemporaryDirectory() as out:
            rows.append(preset_row(preset, options, device_overrides, Path(out)))
        print(f"{preset}: done at {time.perf_counter() - start:.0f} s", flush=True)
    ddp, ddp_clips = math.nan, math.nan
    if (gpus >= 2 or options.ddp) and rows:
        where, trainer = ("GPUs", "ddp") if gpus >= 2 else ("CPU processes", "ddp_cpu")
        first = rows[0]
        ddp = ddp_images_per_second(first["preset"], options, trainer, clip_overrides(first["terms"], NEVER))
        print(f"DDP on two {where}, {first['preset']}: {ddp:.1f} images/s")
        semi = next((row for row in rows if row["terms"]), None)
        if semi is None:
            skipped.append("DDP with clips: no preset with unlabelled clips was measured")
        elif time.perf_counter() - start > options.budget:
            skipped.append(f"DDP with clips: the {options.budget:g} s budget was spent")
        else:
            settings = ["precision=bf16-mixed", *clip_overrides(semi["terms"], 0)]
            ddp_clips = ddp_images_per_second(semi["preset"], options, trainer, settings)
            print(f"DDP on two {where}, {semi['preset']}, bf16-mixed with clips: {ddp_clips:.1f} images/s")
    else:
        skipped.append(f"DDP: {gpus} GPU(s); it needs two (--ddp runs it on the CPU)")
    for line in table(rows):
        print(line)
    for line in skipped:
        print(f"skipped: {line}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return {"rows": rows, "ddp": ddp, "ddp_clips": ddp_clips, "skipped": skipped, "gpus": gpus}


if __name__ == "__main__":
    main()
