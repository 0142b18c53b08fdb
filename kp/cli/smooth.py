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
filled between the first and the last confident frame. savgol, median: a window of --window frames (odd; default 7
and 5). --alpha: the radius's miss rate (default: kp predict's sidecar <stem>.json, else 0.1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp.errors import user_errors_in_one_line
from kp.trajectories.smooth import METHODS
from kp.trajectories.smooth_csv import smooth_file


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kp smooth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", type=Path, help="a kp predict predictions.csv or a DeepLabCut CSV")
    parser.add_argument("--method", choices=METHODS, default="kalman")
    parser.add_argument("--window", type=int, help="savgol and median: frames, odd (default 7 and 5)")
    parser.add_argument("--threshold", type=_fraction, default=0.3, help="scores below it count as missing (0.3)")
    parser.add_argument("--alpha", type=_fraction, help="kalman: the radius's miss rate (default: from the sidecar)")
    parser.add_argument("--out", type=Path, help="output folder (default: the CSV's folder)")
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_intermixed_args(argv)
    with user_errors_in_one_line(args.verbose):
        smooth_file(args.csv, args.method, args.out, args.window, args.threshold, args.alpha)
