"""Framework overhead: the time per training step of kp's Trainer against a plain PyTorch loop doing the same work.
`python scripts/benchmark_overhead.py [--steps 60] [--rounds 3] [--warmup 5] [override ...]`, overrides as for train.py
(`model=simple_cnn`, `data.batch_size=16`); default: the built-in synthetic data, the default model (UNet), batch 32.

Both sides get the model, codec, loss terms, optimiser and training DataLoader (`datamodule.train_dataloader()`) that
`kp.build.build(cfg)` makes from the composed config, and each has its own copy of the network's initial weights.
A plain step: encode the targets with the codec, forward, the weighted sum of the loss terms, zero_grad, backward,
optimiser step. A kp round is a fresh `Trainer` from the config (callbacks, CSV logger, rich progress bar, checkpoints
as
train.py has them) fitting one epoch of `--steps` batches (`trainer.max_epochs=1 trainer.limit_train_batches=STEPS`).
Rounds alternate in ABBA order (plain, kp, kp, plain, plain, kp, ...), so that a load that drifts during the run
(other jobs on a shared machine) favours neither side.

What is timed: the interval from one step's start to the next step's start, where a step starts when its batch has
been fetched (kp: a callback's `on_train_batch_start`; plain: right after `next(loader)`). So a step's time includes
everything the framework does per step (hooks, logging, progress bar, the loss check) and the fetching of the next
batch, on both sides alike. STEPS steps give STEPS - 1 intervals per round; the first `--warmup` of each round are
dropped. The ratio is the median of kp's intervals over the median of the plain loop's, all rounds pooled.
Not in the step times: what happens once per fit (Trainer set-up, the sanity validation, the epoch-end validation,
checkpoint writing, the CSV flush); that is printed separately as the kp round's wall time outside its steps.
Also printed, for locating overhead: the median "compute span" (kp: on_train_batch_start → on_train_batch_end;
plain: batch fetched → after the optimiser step), and the median process CPU time per step (time.process_time between
step starts, all threads of the process: the rich progress bar renders in a thread of its own), which other jobs on a
shared machine disturb less than wall time.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.build import build  # noqa: E402
from kp.config import check_types, compose_config  # noqa: E402
from kp.train.quiet import quiet  # noqa: E402


class StepTimer(Callback):
    """Timestamps of each training batch's start and end (time.perf_counter)."""

    def __init__(self):
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cpu_starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self.ends.append(time.perf_counter())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimizer(module, net):
    """The optimiser (and its parameter groups' lr scales) KeypointModule.configure_optimizers makes, for `net`."""
    optimizer = module.optimizer_factory(params=net.parameter_groups())
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
    return optimizer


def plain_round(
    net, codec, losses, module, loader, steps: int, device: torch.device
) -> tuple[list[float], list[float], list[float]]:
    """`steps` training steps in a plain loop: (start times, end times, process CPU times at the starts)."""
    net.train()
    optimizer = _optimizer(module, net)  # a fresh one per round, as each kp round's fit makes one
    starts, ends, cpu_starts = [], [], []
    batches = iter(loader)
    for _ in range(steps):
        batch = next(batches)
        batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        _sync(device)
        starts.append(time.perf_counter())
        cpu_starts.append(time.process_time())
        outputs = net(batch["image"])
        targets = codec.encode(batch["keypoints"], batch["visible"])
        targets["visible"] = batch["visible"]
        if "count" in batch:
            targets["count"] = batch["count"]
        loss = sum(term.weight * term(outputs, targets) for term in losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _sync(device)
        ends.append(time.perf_counter())
    return starts, ends, cpu_starts


def kp_round(cfg, module, datamodule, output_dir: Path) -> tuple[StepTimer, float, int]:
    """One fit of `cfg.trainer.limit_train_batches` steps as train.py runs it: (timer, wall time of the fit, steps)."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    timer = StepTimer()
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c] + [timer]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values() if c]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return timer, time.perf_counter() - start, trainer.global_step


def intervals(starts: list[float], warmup: int) -> list[float]:
    """Start-to-next-start times of a round, without the first `warmup`."""
    return [b - a for a, b in zip(starts, starts[1:])][warmup:]


def spans(starts: list[float], ends: list[float], warmup: int) -> list[float]:
    return [b - a for a, b in zip(starts, ends)][warmup:]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides as for train.py (model=simple_cnn, data.batch_size=16)"
    )
    parser.add_argument("--steps", type=int, default=60, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (alternating plain, kp, ...)")
    parser.add_argument("--warmup", type=int, default=5, help="step intervals dropped at the start of each round")
    options = parser.parse_args(argv)
    if options.steps - 1 <= options.warmup:
        parser.error(f"--steps {options.steps} leaves no timed interval after --warmup {options.warmup}")
    quiet()
    cfg = compose_config([*options.overrides, "trainer.max_epochs=1", f"trainer.limit_train_batches={options.steps}"])
    check_types(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    if len(datamodule.train_dataloader()) < options.steps:
        parser.error(
            f"--steps {options.steps}: the training loader has only {len(datamodule.train_dataloader())} batches"
        )
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    device = torch.device("cuda" if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda") else "cpu")
    net, losses = copy.deepcopy(module.net).to(device), copy.deepcopy(module.losses).to(device)

    plain_times, kp_times, plain_spans, kp_spans, plain_cpu, kp_cpu, outside = [], [], [], [], [], [], []
    plain_steps, kp_steps = [], []
    with tempfile.TemporaryDirectory(prefix="kp_overhead_") as scratch:
        for round_index in range(options.rounds):
            # ABBA order (plain, kp, kp, plain, plain, kp, ...): a load that drifts during the run favours neither side
            for side in ("plain", "kp") if round_index % 2 == 0 else ("kp", "plain"):
                if side == "plain":
                    starts, ends, cpu_starts = plain_round(
                        net, module.codec, losses, module, datamodule.train_dataloader(), options.steps, device
                    )
                    plain_steps.append(len(ends))
                    plain_round_times = intervals(starts, options.warmup)
                    plain_times += plain_round_times
                    plain_spans += spans(starts, ends, options.warmup)
                    plain_cpu += intervals(cpu_starts, options.warmup)
                else:
                    timer, wall, steps = kp_round(cfg, module, datamodule, Path(scratch) / f"round_{round_index}")
                    kp_steps.append(steps)
                    kp_round_times = intervals(timer.starts, options.warmup)
                    kp_times += kp_round_times
                    kp_spans += spans(timer.starts, timer.ends, options.warmup)
                    kp_cpu += intervals(timer.cpu_starts, options.warmup)
                    outside.append(wall - (timer.ends[-1] - timer.starts[0]))
            print(
                f"round {round_index + 1}/{options.rounds}: "
                f"plain {statistics.median(plain_round_times) * 1e3:.1f} ms/step, "
                f"kp {statistics.median(kp_round_times) * 1e3:.1f} ms/step",
                flush=True,
            )

    result = {
        "plain_ms": statistics.median(plain_times) * 1e3,
        "kp_ms": statistics.median(kp_times) * 1e3,
        "plain_span_ms": statistics.median(plain_spans) * 1e3,
        "kp_span_ms": statistics.median(kp_spans) * 1e3,
        "plain_cpu_ms": statistics.median(plain_cpu) * 1e3,
        "kp_cpu_ms": statistics.median(kp_cpu) * 1e3,
        "kp_outside_steps_s": statistics.median(outside),
        "plain_steps": plain_steps,
        "kp_steps": kp_steps,
        "timed_intervals": (len(plain_times), len(kp_times)),
    }
    result["ratio"] = result["kp_ms"] / result["plain_ms"]
    result["span_ratio"] = result["kp_span_ms"] / result["plain_span_ms"]
    result["cpu_ratio"] = result["kp_cpu_ms"] / result["plain_cpu_ms"]
    print(
        f"\nsteps per round: plain {plain_steps}, kp {kp_steps}; timed intervals (after {options.warmup} warm-up each "
        f"round): plain {len(plain_times)}, kp {len(kp_times)}"
    )
    print(f"median step (start to next start): plain {result['plain_ms']:.1f} ms, kp {result['kp_ms']:.1f} ms")
    print(
        f"median compute span (batch fetched to optimiser step done): plain {result['plain_span_ms']:.1f} ms, "
        f"kp {result['kp_span_ms']:.1f} ms (ratio {result['span_ratio']:.3f})"
    )
    print(
        f"median CPU time of the process per step (all its threads; less disturbed by other jobs than wall time): "
        f"plain {result['plain_cpu_ms']:.1f} ms, kp {result['kp_cpu_ms']:.1f} ms (ratio {result['cpu_ratio']:.3f})"
    )
    print(
        f"kp fit outside its steps (set-up, sanity check, validation, checkpoints), median per round: "
        f"{result['kp_outside_steps_s']:.2f} s"
    )
    print(f"step-time ratio kp/plain: {result['ratio']:.3f}")
    return result


if __name__ == "__main__":
    main()
