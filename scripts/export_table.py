"""Print the README's export table: for every conf/model preset, ONNX and TorchScript parity with PyTorch and CPU
latency, through the same code as `kp export`.

    python scripts/export_table.py [--target heatmap|coords] [--threads 1] [--models unet ...] [--output table.md]

Each model is built as train.py builds it on the default data (synthetic 3×64×64, 5 keypoints; target=heatmap with
DARK decoding unless --target says otherwise), untrained: parity is a property of the exported arithmetic, and a
trained run's own export report (`kp export RUN`) measures it on its validation images. BatchNorm gets its
statistics from one training-mode batch so that it is not the identity. Parity is on 64 synthetic faces; latency is
the median of 20 calls after warm-up on `--threads` CPU threads (kp.export.parity), within --latency-budget seconds
per model (default 600, which the presets never reach).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.build import build  # noqa: E402
from kp.config import CONF_DIR, compose_config  # noqa: E402
from kp.export.export import run  # noqa: E402

DATA = ["data.dataset.sizes={train:32,val:32,test:32}"]  # the datamodule is built, never trained on


def export_row(name: str, target: str, folder: Path, latency_budget_s: float) -> list[str]:
    cfg = compose_config([f"model={name}", f"target={target}", *DATA])
    _, module = build(cfg)
    module.net.train()(torch.rand(8, *module.spec["input_shape"]))
    checkpoint = folder / f"{name}.ckpt"
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, checkpoint)
    report = run(checkpoint, ["onnx", "torchscript"], folder / name, latency_budget_s=latency_budget_s)
    onnx, script = report["formats"]["onnx"], report["formats"]["torchscript"]
    latency = report["latency_ms"]
    return [
        name,
        f"{report['parameters'] / 1e3:.1f} k",
        f"{onnx['size_bytes'] / 1e6:.2f}",
        f"{onnx['parity']['max_px']:.1g}",
        f"{script['parity']['max_px']:.1g}",
        *(
            f"{latency[batch][runtime]:.1f}"
            for batch in ("1", "32")
            for runtime in ("pytorch", "torchscript", "onnxruntime")
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="heatmap", choices=["heatmap", "coords"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", help="presets to measure (default: every conf/model/*.yaml)")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--latency-budget",
        type=float,
        default=600.0,
        help="seconds for each model's latency table (default 600: the full 20 calls, where kp export has 30)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))
    header = [
        "model",
        "params",
        "ONNX MB",
        "ONNX max Δ px",
        "TorchScript max Δ px",
        *(f"{runtime} ms b{batch}" for batch in (1, 32) for runtime in ("eager", "TorchScript", "ORT")),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            lines.append("| " + " | ".join(export_row(name, args.target, Path(folder), args.latency_budget)) + " |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.output:
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
