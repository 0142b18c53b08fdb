"""Print the model zoo's table for the README: parameters, FLOPs per image and CPU forward latency of every
conf/model preset at 64×64 and 96×96.

    python scripts/model_table.py [--target heatmap|coords] [--threads 1] [--output table.md] [extra overrides...]

Each model is built as train.py builds it (the default config with model=<name>: 3-channel images, the synthetic
data's 5 keypoints, target=heatmap at conf/target/heatmap.yaml's stride unless --target says otherwise). FLOPs are
counted by torch.utils.flop_counter.FlopCounterMode for one image: 2 per multiply-add of convolutions and matrix
products (normalisation, activations, pooling and resizing are not counted). Latency is the wall time of a batch-1
forward pass in eval mode without gradients on `--threads` CPU threads: the fastest of at least 10 runs over at least
a second, after warm-up (the fastest, not the median, because on a shared machine the others are what other
processes made of it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from kp.config import CONF_DIR, compose_config

SIZES = (64, 96)
NUM_KEYPOINTS, CHANNELS = 5, 3


def build(name: str, size: int, target: str, overrides: list[str]) -> torch.nn.Module:
    cfg = compose_config([f"model={name}", f"target={target}", *overrides])
    codec = instantiate(cfg.target)(input_size=(size, size))
    net = instantiate(cfg.model)(
        num_keypoints=NUM_KEYPOINTS, input_shape=(CHANNELS, size, size), target=codec.name, stride=codec.stride
    )
    return net.eval()


def flops(net: torch.nn.Module, size: int) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, CHANNELS, size, size))
    return counter.get_total_flops()


def latency_ms(net: torch.nn.Module, size: int, min_seconds: float = 1.0, min_runs: int = 10) -> float:
    images = torch.rand(1, CHANNELS, size, size)
    times = []
    with torch.no_grad():
        for _ in range(3):  # warm-up: allocator, oneDNN kernel selection
            net(images)
        start = time.perf_counter()
        while len(times) < min_runs or time.perf_counter() - start < min_seconds:
            begin = time.perf_counter()
            net(images)
            times.append(time.perf_counter() - begin)
    return 1000 * min(times)


def human(count: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(int(count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="heatmap", choices=["heatmap", "coords"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", help="presets to measure (default: every conf/model/*.yaml)")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every model, e.g. target.stride=1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))

    header = ["model", "params"] + [f"{kind} {s}×{s}" for kind in ("FLOPs", "CPU ms") for s in SIZES]
    rows = []
    for name in names:
        params, row = [], []
        for size in SIZES:
            net = build(name, size, args.target, args.overrides)
            params.append(sum(p.numel() for p in net.parameters()))
            row.append((flops(net, size), latency_ms(net, size)))
        # Regression heads read the flattened features, so their size depends on the input's.
        param_text = human(params[0]) if len(set(params)) == 1 else " / ".join(human(p) for p in params)
        rows.append([name, param_text] + [human(f) for f, _ in row] + [f"{ms:.1f}" for _, ms in row])
        print(f"measured {name}", file=sys.stderr, flush=True)

    lines = [
        f"target={args.target} {' '.join(args.overrides)}".strip() + f", batch 1, {args.threads} CPU "
        f"thread(s), torch {torch.__version__}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
