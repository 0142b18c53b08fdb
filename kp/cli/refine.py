"""The frames a model gets wrong, as a labelling job, and the corrected labels back into the project:

    kp refine RUN [RUN...] VIDEO... [--frames 20] [--every N] [--flip] [--out DIR]
    kp refine --runs RUN RUN ... --videos VIDEO ...
    kp refine merge JOB PROJECT

RUN: a run directory, a checkpoint or an ONNX file; several runs (an ensemble) add their disagreement as a signal.
VIDEO: videos (mp4, avi, mov, mkv), folders or globs of them. Every frame (or every N-th) is scored by the signals kp
has, without labels: its jump away from the Kalman-smoothed trajectory, a low score, a large calibrated radius, the
disagreement with the mirrored image (--flip) and between the runs. A frame's score is its worst signal as a robust
z-score; the worst frames are clustered by a thumbnail of the frame (k-means) and each cluster gives one, so that one
bad second does not take every pick (docs/refine.md).

DIR (default `refine/`) is a small DeepLabCut project to open in napari-deeplabcut or DeepLabCut's GUI:
  labeled-data/<video>/img<frame>.png, labeled-data/<video>/CollectedData_kp.csv   the frames, the model's points as
                                   machine labels (points scored below --threshold left empty)
  config.yaml, refine.csv (why each frame was picked), refine.json, refine.png (the contact sheet)

--format labelstudio also writes labelstudio/tasks.json (the model's points as pre-annotations scored by the
frame's outlier score) and labelstudio/config.xml, for Label Studio (docs/refine.md).

`kp refine merge JOB PROJECT` (JOB: the job folder, or Label Studio's JSON export of its tasks) adds the reviewed
frames (a frame still holding the model's labels is left out, named, unless --accept-unreviewed) to PROJECT (a
DeepLabCut project folder, or a single-CSV folder or its CSV file) without touching its existing rows, refuses a
frame already there with other labels, records them in PROJECT's kp_merges.csv, and prints the command that
retrains from the run (keeping its split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kp.errors import InputError, user_errors_in_one_line
from kp.refine.labelling_job import merge
from kp.refine.refine import refine


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        _merge(argv[1:])
    else:
        _refine(argv)


def _refine(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="kp refine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", help="runs, then videos")
    parser.add_argument("--runs", nargs="+", default=[], help="the runs, where they are not given first")
    parser.add_argument("--videos", nargs="+", default=[], help="the videos, where they are not given after the runs")
    parser.add_argument("--frames", type=int, default=20, help="how many frames to pick")
    parser.add_argument("--every", type=int, default=1, help="score every N-th frame")
    parser.add_argument("--flip", action="store_true", help="also score the disagreement with the mirrored frame")
    parser.add_argument("--threshold", type=float, default=0.3, help="points scored below it are left unlabelled")
    parser.add_argument("--out", type=Path, default=Path("refine"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--format", action="append", choices=["labelstudio"], default=[], help="also write Label Studio's tasks"
    )
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    with user_errors_in_one_line(args.verbose):
        runs, videos = _runs_and_videos(args)
        picks = refine(
            runs,
            videos,
            args.out,
            args.frames,
            args.every,
            args.flip,
            args.threshold,
            args.batch_size,
            console,
            formats=tuple(args.format),
        )
        table = Table(title=f"kp refine: {len(picks)} frames to label")
        for column in ("", "video", "frame", "outlier score", "why"):
            table.add_column(column)
        for number, p in enumerate(picks, 1):
            table.add_row(str(number), p.video.name, str(p.frame), f"{p.outlier:.1f}", p.reason)
        console.print(table)
        console.print(
            f"written: {args.out}/ (contact sheet {args.out / 'refine.png'}); correct the points in "
            f"napari-deeplabcut or DeepLabCut, then: kp refine merge {args.out} PROJECT"
        )


def _runs_and_videos(args) -> tuple[list[str], list[str]]:
    """The runs and the videos: --runs/--videos where given; else the leading paths that are models (a run directory
    with checkpoints/, a .ckpt or .onnx file) are the runs (at least the first path), the rest videos."""
    runs, videos = list(args.runs), list(args.videos)
    paths = list(args.paths)
    if not runs and paths:
        count = next((i for i, path in enumerate(paths) if not _is_model(Path(path))), len(paths))
        runs, paths = paths[: max(count, 1)], paths[max(count, 1) :]
    videos += paths
    if not runs or not videos:
        raise InputError("kp refine needs a run and a video: kp refine RUN VIDEO... (or --runs ... --videos ...)")
    return runs, videos


def _is_model(path: Path) -> bool:
    return path.suffix.lower() in (".ckpt", ".onnx") or (path / "checkpoints").is_dir()


def _merge(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="kp refine merge", description=__doc__)
    parser.add_argument("job", type=Path, help="the folder kp refine wrote, its labels corrected")
    parser.add_argument("project", type=Path, help="a DeepLabCut project folder, or a single-CSV folder or file")
    parser.add_argument(
        "--accept-unreviewed", action="store_true", help="also merge frames still holding the model's labels"
    )
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        done = merge(args.job, args.project, args.accept_unreviewed)
        print(
            f"merged {done.added} frame(s) into {args.project}"
            + (f" ({done.already} were there already)" if done.already else "")
        )
        if done.unreviewed:
            verb = (
                "merged as the model labelled them"
                if args.accept_unreviewed
                else "left out (--accept-unreviewed takes them)"
            )
            print(f"{len(done.unreviewed)} frame(s) nobody changed, {verb}: {', '.join(done.unreviewed)}")
        print(f"retrain from the run:\n  {done.retrain}")
