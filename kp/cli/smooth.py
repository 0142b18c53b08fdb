"""Smooth keypoint trajectories over time:

    kp smooth predictions.csv [--method kalman|savgol|median] [--window N] [--threshold 0.3] [--alpha A] [--out DIR]

Reads a `kp predict` CSV (or a DeepLabCut analysis or CollectedData CSV) and writes, into DIR (default: the CSV's
folder):
  <stem>_smoothed.csv            the same rows and columns, the keypoints smoothed (scores left as they were; with
                                 kalman, the radius becomes the smoother's own (1 - alpha) circle)
  <stem>_smoothing/<kp>.png      per keypoint (and video): x and y over time, raw faint, smoothed bold, frames below
                                 the score threshold marked
  <stem>_smoothing/report.md     per keypoint: frames filled, mean frame-to-frame jump before and after, the share of
                                 confident frames whose smoothed point stays within the raw point's radius (+ .csv)

kalman (default): a constant-velocity Kalman filter and Rauch-Tung-Striebel smoother per keypoint, each frame's
measurement noise taken from its calibrated radius (a large radius or a low score trusts the frame less), the
process noise fitted per keypoint by maximum likelihood. Frames scored below --threshold count as missing and are
filled between the first and the last confident frame. An ensemble's CSV (kp predict RUN1 RUN2 ..., with
<keypoint>_ens_var columns) is smoothed as the Ensemble Kalman Smoother does: each frame's measurement variance is the
members' spread (ens_var / 2 per coordinate) plus the radius's where calibrated; the report says which noise was used.
savgol, median: a window of --window frames (odd; default 7 and 5). --alpha: the radius's miss rate (default: kp
predict's sidecar <stem>.json, else 0.1).
"""

from __future__ import annotations

from pathlib import Path

from kp.cli.common import count, fraction, parser, probability, user_errors_in_one_line
from kp.cli.predict import METHODS
from kp.defaults import SCORE_THRESHOLD


def main(argv: list[str] | None = None) -> None:
    command = parser("kp smooth", __doc__)
    command.add_argument("csv", type=Path, help="a kp predict predictions.csv or a DeepLabCut CSV")
    command.add_argument("--method", choices=METHODS, default="kalman")
    command.add_argument("--window", type=count, help="savgol and median: frames, odd (default 7 and 5)")
    command.add_argument(
        "--threshold", type=fraction, default=SCORE_THRESHOLD, help="scores below it count as missing (%(default)s)"
    )
    command.add_argument("--alpha", type=probability, help="kalman: the radius's miss rate (default: from the sidecar)")
    command.add_argument("--out", type=Path, help="output folder (default: the CSV's folder)")
    args = command.parse_intermixed_args(argv)
    with user_errors_in_one_line(args.verbose):
        from kp.trajectories.smooth_csv import smooth_file

        smooth_file(args.csv, args.method, args.out, args.window, args.threshold, args.alpha)
