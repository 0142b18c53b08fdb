"""The frames a model gets wrong, as a labelling job, and the corrected labels back into the project:

    kp refine RUN [RUN...] VIDEO... [--frames 20] [--every N] [--flip] [--out DIR]
    kp refine --runs RUN RUN ... --videos VIDEO ...
    kp refine merge JOB PROJECT

RUN: a run directory, a checkpoint or an ONNX file; several runs (an ensemble) add their disagreement as a signal.
VIDEO: videos (mp4, avi, mov, mkv), folders or globs of them. Every frame (or every N-th) is scored by the signals kp
has, without labels: a point's jump away from its track's running median over 7 frames, a low score, a large
calibrated radius, the disagreement with the mirrored image (--flip) and between the runs, and the distance of the
pose to the pose and multi-view PCA of the run's training labels (the pose priors its checkpoint carries; a run
without them gets one line saying why). A frame's score is its
worst signal as a robust z-score; the worst frames are clustered by a thumbnail of the frame (k-means) and each
cluster gives one, so that one bad second does not take every pick (docs/refine.md).

DIR (default `refine/`) is a small DeepLabCut project to open in napari-deeplabcut or DeepLabCut's GUI:
  labeled-data/<video>/img<frame>.png, labeled-data/<video>/CollectedData_kp.csv   the frames, the model's points as
                                   machine labels (points scored below --threshold left empty)
  config.yaml, refine.csv (why each frame was picked), refine.json, refine.png (the contact sheet)

--format labelstudio also writes labelstudio/tasks.json (the model's points as pre-annotations scored by the
frame's outlier score) and labelstudio/config.xml, for Label Studio (docs/refine.md).

`kp refine merge JOB PROJECT` adds the reviewed frames to PROJECT (`kp refine merge --help`).
"""

from __future__ import annotations

from pathlib import Path

from kp.cli.common import count, fraction, is_model, parser, subcommands, user_errors_in_one_line
from kp.defaults import SCORE_THRESHOLD
from kp.errors import InputError

MERGE = """Add the reviewed frames of a kp refine job to a project:

    kp refine merge JOB PROJECT [--accept-unreviewed]

JOB: the job folder (its labels corrected in napari-deeplabcut or DeepLabCut), or Label Studio's JSON export of its
tasks (kp refine --format labelstudio). A frame still holding the model's labels (the job's machine_labels.csv) is
left out and named unless --accept-unreviewed; a job where no frame changed is refused. PROJECT: a DeepLabCut project
folder, or a single-CSV folder or its CSV file. Its existing rows stay as they are; a frame already there with other
labels is refused; PROJECT's kp_merges.csv records which frames came from which job. Prints the command that
retrains from the run, on the run's split (docs/refine.md).
"""


def main(argv: list[str] | None = None) -> None:
    subcommands(argv, _refine, merge=_merge)


def _refine(argv: list[str]) -> None:
    command = parser("kp refine", __doc__)
    command.add_argument("paths", nargs="*", help="runs, then videos")
    command.add_argument("--runs", nargs="+", default=[], help="the runs, where they are not given first")
    command.add_argument("--videos", nargs="+", default=[], help="the videos, where they are not given after the runs")
    command.add_argument("--frames", type=count, default=20, help="how many frames to pick")
    command.add_argument("--every", type=count, default=1, help="score every N-th frame")
    command.add_argument("--flip", action="store_true", help="also score the disagreement with the mirrored frame")
    command.add_argument(
        "--threshold", type=fraction, default=SCORE_THRESHOLD, help="points scored below it are left unlabelled; 0 to 1"
    )
    command.add_argument("--out", type=Path, default=Path("refine"))
    command.add_argument("--batch-size", type=count, default=32)
    command.add_argument(
        "--format", action="append", choices=["labelstudio"], default=[], help="also write Label Studio's tasks"
    )
    args = command.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        from rich.console import Console
        from rich.table import Table

        from kp.refine.refine import refine

        console = Console(stderr=True)
        runs, videos = _runs_and_videos(args)
        picks = refine(
            runs,
            videos,
            args.out,
            frames=args.frames,
            every=args.every,
            flip=args.flip,
            threshold=args.threshold,
            batch_size=args.batch_size,
            console=console,
            formats=tuple(args.format),
        )
        table = Table(title=f"kp refine: {len(picks)} frames to label")
        for column in ("", "video", "frame", "outlier score", "why"):
            table.add_column(column, overflow="fold")
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
        number = next((i for i, path in enumerate(paths) if not is_model(Path(path))), len(paths))
        runs, paths = paths[: max(number, 1)], paths[max(number, 1) :]
    videos += paths
    if not runs or not videos:
        raise InputError("kp refine needs a run and a video: kp refine RUN VIDEO... (or --runs ... --videos ...)")
    return runs, videos


def _merge(argv: list[str]) -> None:
    command = parser("kp refine merge", MERGE)
    command.add_argument("job", type=Path, help="the job folder kp refine wrote, or Label Studio's JSON export")
    command.add_argument("project", type=Path, help="a DeepLabCut project folder, or a single-CSV folder or file")
    command.add_argument(
        "--accept-unreviewed", action="store_true", help="also merge frames still holding the model's labels"
    )
    args = command.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        from kp.refine.labelling_job import merge

        done = merge(args.job, args.project, args.accept_unreviewed)
        already = f" ({done.already} were there already)" if done.already else ""
        print(f"merged {done.added} frame(s) into {args.project}{already}")
        if done.unreviewed:
            how = (
                "merged as the model labelled them"
                if args.accept_unreviewed
                else "left out (--accept-unreviewed takes them)"
            )
            print(f"{len(done.unreviewed)} frame(s) nobody changed, {how}: {', '.join(done.unreviewed)}")
        print(f"retrain from the run:\n  {done.retrain}")
