"""Smoothing on synthetic tracks whose truth is known: RMSE against the truth of the raw points and of kp smooth's
three methods (kp.trajectories.smooth), printed as a Markdown table.

    python scripts/benchmark_smooth.py [--frames 1000] [--keypoints 8] [--seeds 5] [--wrong 0.03] [--low 0.05]

Each keypoint moves on a smooth path (a sum of three sines of random period 40-400 frames, amplitude 5-60 px). A
prediction is the truth plus Gaussian noise whose standard deviation varies from frame to frame (1-4 px), with the
calibrated radius a model would give it (sigma × sqrt(-2 ln alpha), alpha 0.1) and score 0.9; a share --wrong of the
frames are wrong detections, 20-80 px off, which a calibrated model gives a large radius (60-150 px) but a fair score
(0.5-0.9: the kind of error a score threshold does not catch); a share --low are scored 0.1 (below the threshold, so
missing) and their position is garbage. RMSE per coordinate, in px, over the frames every method fills (a keypoint's
first to last confident frame), overall and on the wrong frames alone; mean over seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.trajectories import Tracks, smooth  # noqa: E402
from kp.trajectories.tracks import Layout  # noqa: E402

ALPHA = 0.1
METHODS = {"kalman": {}, "savgol": {"window": 7}, "median": {"window": 5}}


def synthetic(
    frames: int, keypoints: int, wrong: float, low: float, seed: int
) -> tuple[Tracks, np.ndarray, np.ndarray]:
    """(tracks, truth N×K×2, N×K mask of the wrong detections)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None]
    period = rng.uniform(40, 400, (3, keypoints, 2))
    amplitude = rng.uniform(5, 60, (3, keypoints, 2))
    phase = rng.uniform(0, 2 * np.pi, (3, keypoints, 2))
    truth = 200 + sum(amplitude[i] * np.sin(2 * np.pi * t / period[i] + phase[i]) for i in range(3))
    sigma = rng.uniform(1, 4, (frames, keypoints))
    xy = truth + rng.normal(0, 1, truth.shape) * sigma[..., None]
    radius = sigma * math.sqrt(-2 * math.log(ALPHA))
    score = np.full((frames, keypoints), 0.9)
    bad = rng.random((frames, keypoints)) < wrong
    angle = rng.uniform(0, 2 * np.pi, bad.sum())
    xy[bad] += rng.uniform(20, 80, bad.sum())[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    radius[bad], score[bad] = rng.uniform(60, 150, bad.sum()), rng.uniform(0.5, 0.9, bad.sum())
    missing = (rng.random((frames, keypoints)) < low) & ~bad
    score[missing] = 0.1
    xy[missing] = rng.uniform(0, 400, (missing.sum(), 2))
    names = [f"k{i}" for i in range(keypoints)]
    layout = Layout("kp", [], [], [], [], [], [])
    return (
        Tracks(np.arange(frames), names, xy, score, radius, np.full(frames, "clip", dtype=object), layout),
        truth,
        bad,
    )


def rmse(xy: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((xy[mask] - truth[mask]) ** 2))) if mask.any() else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--keypoints", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--wrong", type=float, default=0.03, help="share of wrong detections (large radius)")
    parser.add_argument("--low", type=float, default=0.05, help="share of frames scored below the threshold")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"raw": [], **{method: [] for method in METHODS}}
    for seed in range(args.seeds):
        tracks, truth, bad = synthetic(args.frames, args.keypoints, args.wrong, args.low, seed)
        outputs = {"raw": tracks.xy}
        outputs.update({name: smooth(tracks, name, **options)[0].xy for name, options in METHODS.items()})
        filled = np.all([np.isfinite(xy).all(-1) for xy in outputs.values()], axis=0)
        confident = filled & (tracks.score >= 0.3)  # raw has no position worth scoring where the score is low
        for name, xy in outputs.items():
            mask = confident if name == "raw" else filled
            results[name].append((rmse(xy, truth, mask), rmse(xy, truth, filled & bad)))
    print(
        f"{args.seeds} seeds × {args.keypoints} keypoints × {args.frames} frames; wrong detections {args.wrong:.0%}, "
        f"low-score frames {args.low:.0%}; RMSE per coordinate in px (raw: over its confident frames)\n"
    )
    print("| method | RMSE, all frames | RMSE, wrong detections |")
    print("|---|---|---|")
    for name, values in results.items():
        overall, wrong = np.mean(values, axis=0)
        label = {"savgol": "savgol (window 7)", "median": "median (window 5)"}.get(name, name)
        print(f"| {label} | {overall:.2f} | {'-' if math.isnan(wrong) else f'{wrong:.2f}'} |")


if __name__ == "__main__":
    main()
