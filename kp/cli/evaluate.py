"""Evaluate a trained run: `kp evaluate RUN [--split test|val|train|all] [--flip] [key=value ...]`, options and
overrides in any order.

Scores the run's best checkpoint (or --checkpoint) on a split of its own dataset, or, with overrides
(`data.dataset.root=...`, `data=...` with the same keypoints), on other data, and writes the report
(kp.evaluation.report) to
RUN/eval/<split>/ (or --out). The data config is the run's .hydra/config.yaml with the dotted overrides merged in; a
group override (`data=dlc`) composes the data config afresh from kp/conf/ with the given overrides only.

Predictions go through the model's one inference path (KeypointModule.locate_details, via kp.load) and the metrics
through the module's own metric objects, so the values are those of train.py's test for the same split and
checkpoint. The predictions are saved batch by batch in OUT/progress/ (removed once the report is written): after a
job that was killed, the same command with --resume predicts only the rest, with the same result. The uncertainty
radius comes from the calibration the checkpoint carries for this flip mode; a checkpoint
without one is calibrated on the validation split first (kp.calibration), and the calibration is stored in it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp.errors import user_errors_in_one_line
from kp.evaluation.evaluate import (
    SPLITS,
    evaluate_run,
)


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kp evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run directory of python train.py")
    parser.add_argument("overrides", nargs="*", help="data config overrides, key=value")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--flip", action="store_true", help="test-time flip (the radius then uses its disagreement)")
    parser.add_argument("--checkpoint", type=Path, help="default: the run's best checkpoint")
    parser.add_argument("--out", type=Path, help="default: RUN/eval/<split>")
    parser.add_argument(
        "--alpha", type=_probability, default=0.1, help="the radius misses with probability alpha (0.1)"
    )
    parser.add_argument("--worst", type=int, default=16, help="samples in the worst-N gallery")
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="fit the radius again on the val split of the data as given (e.g. new recordings)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="go on from the predictions a stopped job saved in OUT/progress/"
    )
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_intermixed_args(argv)  # options and key=value overrides in any order
    with user_errors_in_one_line(args.verbose):
        metrics = evaluate_run(
            args.run,
            args.split,
            args.flip,
            args.checkpoint,
            args.out,
            args.overrides,
            args.alpha,
            args.worst,
            args.recalibrate,
            args.resume,
        )
    print(f"report: {metrics['report']}")
