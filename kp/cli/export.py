"""Export a trained model to ONNX and TorchScript, and prove each export right:

    kp export RUN_OR_CHECKPOINT [--format onnx|torchscript|all] [--decode/--no-decode] [--flip]
                        [--batch dynamic|N] [--out DIR] [--latency-budget 30 | --no-latency]

Writes DIR/model.onnx and/or DIR/model.torchscript.pt with export_report.md and export_report.json (DIR: RUN/export for
a run directory, the checkpoint's folder for a checkpoint file). The report gives, per format, the keypoint parity
against PyTorch on up to 64 validation images (kp.export.parity), latency at batch 1 and 32, file size and parameter
count; the command fails when an export misses parity (keypoints within 0.01 px). Latency: the median of up to 20
calls per runtime and batch size, within --latency-budget seconds for the whole table (default 30, so that a large
model on a busy CPU exports in about a minute; a slow setting gets fewer calls, at least one); --no-latency leaves it
out.

--decode (default): the graph takes preprocessed images B×C×H×W (kp.inference.preprocess.Preprocess) and returns
keypoints B×K×2
in input pixels and scores B×K, through KeypointModule.locate (the one inference path); --flip puts test-time flip in
it. --no-decode: the network's raw outputs (heatmaps or coordinates, visibility logits, count).

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`; deprecated since torch 2.9, present in the
pinned 2.13): it needs no onnxscript and exports these nets 10-30 times faster than the torch.export-based exporter
(5-15 s per model on the development machine, which would make the every-model test minutes long), with the same
parity. The ONNX file's metadata_props carry what a consumer needs: keypoint names, flip pairs, skeleton, input shape
and channels, the preprocessing and the outputs' meaning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp.cli.common import batch, parser, seconds, user_errors_in_one_line

# As kp.export.export.FORMATS and kp.export.parity.LATENCY_BUDGET_S (tests/test_cli.py checks): written here so that
# --help and a wrong argument answer without importing torch.
FORMATS = ("onnx", "torchscript")
LATENCY_BUDGET_S = 30.0


def main(argv: list[str] | None = None) -> None:
    command = parser("kp export", __doc__)
    command.add_argument("model", type=Path, help="a run directory (its best checkpoint) or a checkpoint file")
    command.add_argument("--format", choices=[*FORMATS, "all"], default="all")
    command.add_argument(
        "--decode",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keypoints and scores out of the graph (default), or the raw outputs",
    )
    command.add_argument("--flip", action="store_true", help="test-time flip inside the graph")
    command.add_argument(
        "--batch", type=batch, default=None, metavar="dynamic|N", help="the ONNX graph's batch size (default: dynamic)"
    )
    command.add_argument("--out", type=Path, help="output folder (default: RUN/export, or the checkpoint's folder)")
    command.add_argument(
        "--latency", action=argparse.BooleanOptionalAction, default=True, help="time the runtimes (default)"
    )
    command.add_argument(
        "--latency-budget",
        type=seconds,
        default=LATENCY_BUDGET_S,
        metavar="S",
        help=f"seconds for the latency table, all runtimes and batch sizes (default {LATENCY_BUDGET_S:g})",
    )
    args = command.parse_args(argv)
    formats = list(FORMATS) if args.format == "all" else [args.format]
    with user_errors_in_one_line(args.verbose):
        from kp.export.export import run

        report = run(
            args.model,
            formats,
            args.out,
            decode=args.decode,
            flip=args.flip,
            batch=args.batch,
            latency_budget_s=args.latency_budget if args.latency else 0,
        )
    print(f"{report['out']}/export_report.md: parity within {report['limit_px']} px for {', '.join(formats)}")
