"""Evaluate a trained run: `kp evaluate RUN [--split test|val|train|all] [--flip] [key=value ...]`, options and
overrides in any order.

Scores the run's best checkpoint (or --checkpoint) on a split of its own dataset, or, with overrides
(`data.dataset.root=...`, `data=...` with the same keypoints), on other data, and writes the report
(kp.evaluation.report) to RUN/eval/<split>[-flip][-<data>]/ (or --out): the folder and the report's header name the
split, the flip mode and the data. A folder that holds a report already (train.py's own is RUN/eval/test/) is
refused unless --overwrite. The data config is the run's .hydra/config.yaml with the dotted overrides merged in (a
misspelt key ends in one line with the nearest keys); a group override (`data=dlc`) composes the data config afresh
from conf/ with the given overrides only.

Predictions go through the model's one inference path (KeypointModule.locate_details, via kp.load) and the metrics
through the module's own metric objects, so the values are those of train.py's test for the same split and
checkpoint. The predictions are saved batch by batch in OUT/progress/ (removed once the report is written): after a
job that was killed, the same command with --resume predicts only the rest, with the same result. The uncertainty
radius comes from the calibration the checkpoint carries for this flip mode; a checkpoint
without one is calibrated on the validation split first (kp.calibration), and the calibration is stored in it beside
the weights (the command says so in one line). The report also gives the label-free error signal of the pose priors
the checkpoint carries (the pose and multi-view PCA of the training labels) per keypoint, and how well it tracks the
true error (Spearman, per sample), or why a prior is absent.
"""

from __future__ import annotations

from pathlib import Path

from kp.cli.common import count, parser, probability, user_errors_in_one_line
from kp.defaults import EVALUATED_SPLITS, MISS_RATE, WORST_SAMPLES


def main(argv: list[str] | None = None) -> None:
    command = parser("kp evaluate", __doc__, overrides=True)
    command.add_argument("run", type=Path, help="a run directory of kp train")
    command.add_argument("overrides", nargs="*", help="data config overrides, key=value")
    command.add_argument("--split", choices=EVALUATED_SPLITS, default="test")
    command.add_argument("--flip", action="store_true", help="test-time flip (the radius then uses its disagreement)")
    command.add_argument("--checkpoint", type=Path, help="default: the run's best checkpoint")
    command.add_argument("--out", type=Path, help="default: RUN/eval/<split>[-flip][-<data>]")
    command.add_argument("--overwrite", action="store_true", help="replace the report the folder holds")
    command.add_argument(
        "--alpha", type=probability, default=MISS_RATE, help="the radius misses with probability alpha (%(default)s)"
    )
    command.add_argument("--worst", type=count, default=WORST_SAMPLES, help="samples in the worst-N gallery")
    command.add_argument(
        "--recalibrate",
        action="store_true",
        help="fit the radius again on the val split of the data as given (e.g. new recordings)",
    )
    command.add_argument(
        "--resume", action="store_true", help="go on from the predictions a stopped job saved in OUT/progress/"
    )
    args = command.parse_intermixed_args(argv)  # options and key=value overrides in any order
    with user_errors_in_one_line(args.verbose):
        from kp.evaluation.evaluate import evaluate_run

        metrics = evaluate_run(
            args.run,
            split=args.split,
            flip=args.flip,
            checkpoint=args.checkpoint,
            out=args.out,
            overrides=args.overrides,
            alpha=args.alpha,
            num_worst=args.worst,
            recalibrate=args.recalibrate,
            resume=args.resume,
            overwrite=args.overwrite,
            config_dir=args.config_dir,
        )
    print(f"report: {metrics['report']}")
