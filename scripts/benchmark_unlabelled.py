"""Issue 27's measurements: runs trained with and without unlabelled video, and an ensemble against its members, on
a DeepLabCut project's held-out labelled frames and on its unlabelled video.

    python scripts/benchmark_unlabelled.py --project ../shared/data/mirror_mouse \\
        --group supervised RUN [RUN ...] --group semi RUN [RUN ...] [--ensemble supervised] \\
        [--video VIDEO] [--out benchmarks/unlabelled]

Everything goes through the commands a user runs (`kp predict`, `kp smooth`), in a process each; predictions already
in --out are reused. Per run:
- test RMSE: the run's test frames (its splits.csv) predicted by `kp predict`, against CollectedData.csv, in the
  frames' pixels, over labelled points, sqrt(mean squared distance / 2) as `kp evaluate`'s rmse_source_px; and the
  worst body part's mean error over the median body part's;
- on the video (--video, default the first of the project's videos/): the median and 99th percentile of the
  frame-to-frame jump (the distance a keypoint moves from one frame to the next, every keypoint and frame), the 99th
  percentile over the jumps whose two frames' scores reach kp's threshold (0.3), the 99th after `kp smooth` (Kalman;
  an ensemble's CSV: the ensemble variance as each frame's noise), and the median PCA reprojection error of the raw
  predictions: the distance of each keypoint to its reprojection on the pose PCA and on the multi-view PCA, both
  fitted on all of the project's labelled frames in the frames' pixels (one yardstick for every run,
  kp.unsupervised_losses);
then each group's mean ± spread (standard deviation over runs) and, with --ensemble G, G's runs as one ensemble
(`kp predict RUN1 RUN2 ... INPUT`): the same figures, smoothed by `kp smooth` on the ensemble's CSV.
Written: <out>/runs.csv (a row per run and ensemble), <out>/unlabelled.md (the table, printed too).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp import markdown  # noqa: E402
from kp.defaults import SCORE_THRESHOLD  # noqa: E402
from kp.errors import InputError, user_errors_in_one_line  # noqa: E402
from kp.formats import dlc_csv  # noqa: E402
from kp.trajectories.tracks import read_tracks  # noqa: E402
from kp.unsupervised_losses import MultiviewPCALoss, PosePCALoss, pca_keypoint_errors  # noqa: E402

FIGURES = (
    "test_rmse",
    "worst_part_ratio",
    "jump_median",
    "jump_p99",
    "confident_jump_p99",
    "smoothed_jump_p99",
    "pose_pca",
    "multiview_pca",
)


def kp_command(*args: str) -> None:
    """Run `kp ARGS` in its own process; its last error line if it fails."""
    result = subprocess.run([sys.executable, "-m", "kp", *args], cwd=ROOT, text=True, capture_output=True)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"kp {' '.join(args[:3])} ...: failed: {last}")


def predicted(runs: list[Path], inputs: list[Path], out: Path) -> Path:
    """out/predictions.csv of `kp predict RUNS INPUTS`, predicted once."""
    csv_path = out / "predictions.csv"
    if not csv_path.exists():
        kp_command("predict", *map(str, runs), *map(str, inputs), "--out", str(out))
    return csv_path


def smoothed(csv_path: Path) -> Path:
    path = csv_path.with_name(f"{csv_path.stem}_smoothed.csv")
    if not path.exists():
        kp_command("smooth", str(csv_path))
    return path


def labels(project: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """(body parts, image path -> K×2 labelled pixels, NaN where not labelled) of CollectedData.csv."""
    table = dlc_csv.read(project / "CollectedData.csv")
    by_image = {}
    for _, fields in table.rows:
        cells = [[fields[c[axis]] for axis in ("x", "y")] for c in table.columns.values()]
        by_image[table.index(fields)] = np.array(
            [[float(v) if v.strip() else math.nan for v in xy] for xy in cells], dtype=float
        )
    return table.bodyparts, by_image


def test_figures(runs: list[Path], project: Path, names: list[str], truth: dict, out: Path) -> dict[str, float]:
    """test_rmse and worst_part_ratio of RUNS (one model or an ensemble) on their test split."""
    tests = {tuple(pd.read_csv(run / "splits.csv").query("split == 'test'")["sample"]) for run in runs}
    if len(tests) != 1:
        sys.exit(f"{', '.join(map(str, runs))}: the runs hold different test splits; an ensemble needs one")
    images = list(tests.pop())
    rows = pd.read_csv(predicted(runs, [project / image for image in images], out / "test"))
    errors = []
    for image in images:
        row = rows[rows["file"].map(lambda f: Path(f).resolve()) == (project / image).resolve()].iloc[0]
        guess = np.array([[row[f"{name}_x"], row[f"{name}_y"]] for name in names], dtype=float)
        errors.append(np.linalg.norm(guess - truth[image], axis=1))
    errors = np.array(errors)  # images × K, NaN where not labelled
    per_part = np.nanmean(errors, axis=0)
    return {
        "test_rmse": float(np.sqrt(np.nanmean(errors**2) / 2)),
        "worst_part_ratio": float(np.nanmax(per_part) / np.nanmedian(per_part)),
    }


def jumps(csv_path: Path, threshold: float | None = None) -> np.ndarray:
    """Every keypoint's frame-to-frame distance (px) over consecutive frames of the CSV's video; with a threshold,
    only where both frames' scores reach it."""
    tracks = read_tracks(csv_path)
    order = np.argsort(tracks.frames)
    consecutive = np.diff(tracks.frames[order]) == 1
    steps = np.linalg.norm(np.diff(tracks.xy[order], axis=0), axis=-1)
    if threshold is not None:
        sure = np.nan_to_num(tracks.score[order], nan=-1.0) >= threshold
        steps[~(sure[1:] & sure[:-1])] = np.nan
    steps = steps[consecutive]
    return steps[np.isfinite(steps)]


def video_figures(csv_path: Path, pca_terms: dict) -> dict[str, float]:
    raw, smooth = jumps(csv_path), jumps(smoothed(csv_path))
    tracks = read_tracks(csv_path)
    figures = {
        "jump_median": float(np.median(raw)),
        "jump_p99": float(np.percentile(raw, 99)),
        "confident_jump_p99": float(np.percentile(jumps(csv_path, SCORE_THRESHOLD), 99)),
        "smoothed_jump_p99": float(np.percentile(smooth, 99)),
    }
    for name, term in pca_terms.items():
        figures[name] = float(np.nanmedian(pca_keypoint_errors(term, tracks.xy)))
    return figures


def measure(name: str, group: str, runs: list[Path], args, names, truth, pca_terms) -> dict:
    out = args.out / name
    print(f"{name}: {', '.join(map(str, runs))}", file=sys.stderr)
    figures = test_figures(runs, args.project, names, truth, out)
    figures |= video_figures(predicted(runs, [args.video], out / "video"), pca_terms)
    return {"name": name, "group": group, "runs": " ".join(map(str, runs)), **figures}


def summary(rows: list[dict]) -> list[dict]:
    """Per group: each figure's mean ± spread (standard deviation) over its runs, and the runs' values."""
    table = []
    for group in dict.fromkeys(row["group"] for row in rows):
        members = [row for row in rows if row["group"] == group]
        line = {"group": group, "runs": len(members)}
        for figure in FIGURES:
            values = [row[figure] for row in members]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            each = f" ({' / '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""
            line[figure] = f"{statistics.fmean(values):.2f}{spread}{each}"
        table.append(line)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, required=True, help="the DeepLabCut project (CollectedData.csv)")
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "RUN"))
    parser.add_argument("--ensemble", action="append", default=[], metavar="GROUP", help="a group as one ensemble")
    parser.add_argument("--video", type=Path, help="default: the first video of the project's videos/")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "unlabelled")
    args = parser.parse_args()
    with user_errors_in_one_line():
        measure_all(args, parser)


def check_inputs(args, groups: dict[str, list[Path]]) -> None:
    """One line for a project without labels or video, or a run folder that is not a finished kp run."""
    if not (args.project / "CollectedData.csv").is_file():
        raise InputError(f"{args.project}: no CollectedData.csv: --project is a DeepLabCut project folder")
    videos = sorted((args.project / "videos").glob("*.mp4"))
    if args.video is None and not videos:
        raise InputError(f"{args.project / 'videos'}: no .mp4 video: name one with --video")
    args.video = args.video or videos[0]
    if not args.video.is_file():
        raise InputError(f"{args.video}: no such video")
    for run in (run for runs in groups.values() for run in runs):
        if not (run / "splits.csv").is_file():
            raise InputError(f"{run}: no splits.csv: not a kp run folder (kp train writes one)")


def measure_all(args, parser) -> None:
    groups = {group[0]: [Path(run) for run in group[1:]] for group in args.group}
    check_inputs(args, groups)
    missing = [g for g in args.ensemble if g not in groups]
    if missing:
        parser.error(f"--ensemble {missing[0]}: no such --group ({', '.join(groups)})")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names, truth = labels(args.project)
    poses = np.stack(list(truth.values()))
    pca_terms = {"pose_pca": PosePCALoss().fit(names, poses), "multiview_pca": MultiviewPCALoss().fit(names, poses)}
    rows = []
    for group, runs in groups.items():
        for run in runs:
            rows.append(measure(f"{group}/{run.name}", group, [run], args, names, truth, pca_terms))
    for group in args.ensemble:
        rows.append(measure(f"{group}/ensemble", f"{group} ensemble", groups[group], args, names, truth, pca_terms))
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "runs.csv", index=False)
    lines = summary(rows)
    text = markdown.table(list(lines[0]), [list(line.values()) for line in lines])
    (args.out / "unlabelled.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
