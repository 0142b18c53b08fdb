"""Keypoints for new images and videos from a trained model:

    kp predict MODEL INPUT... [--out DIR] [--flip] [--format dlc] [--format coco] [--detect faces]
    kp predict MODEL VIDEO --smooth kalman
    kp predict RUN1 RUN2 RUN3 INPUT...        an ensemble (docs/use.md, "Ensembles")

MODEL: a run directory (its best checkpoint), a checkpoint file, or an ONNX file from kp export. INPUT: image files,
folders (searched
recursively; jpg, jpeg, png, bmp, tif, any case), globs, and videos (mp4, avi, mov, mkv; --every N, --start, --end).
Keypoints come back in each image's own pixels (x = column, y = row, the top-left pixel's centre at 0, 0).

DIR (default `predictions/`) gets
  predictions.csv           one row per image, frame or face: file, frame, [face, box], status, then
                            <keypoint>_x, <keypoint>_y, <keypoint>_score, <keypoint>_radius for every keypoint
                            (radius: the calibrated uncertainty circle in the image's pixels, holding the true point
                            with probability 1 - alpha; empty for a model without calibration; docs/evaluation.md,
                            "Calibrated uncertainty")
  CollectedData_kp.csv      with --format dlc: DeepLabCut's labelled-data layout (three header rows; points scored
                            below --threshold left empty, as unlabelled)
  predictions_coco.json     with --format coco: COCO keypoint results (x, y, score triples)
  <video>DLC_kp.csv         with --format dlc-poses: DeepLabCut's pose-estimation output (x, y, likelihood; row i is
                            frame i), one per video, and images_DLC_kp.csv for still images (movement reads them)
  predictions.slp / .nwb    with --format slp / nwb: SLEAP labels / NWB (ndx-pose) of predicted instances, through
                            sleap-io (pip install -e ".[formats]"); an existing .nwb is refused, not overwritten
  overlays/<name>.png       each image with its predictions and their radius circles (off with --no-overlays)
  overlays/<video>.mp4      each video, annotated, one frame per predicted frame
  skipped.csv               unreadable images or frames (file, frame, reason), also listed at the end
  predictions.json          what the radius means: the calibration's alpha; with an ensemble, its number of
                            members (kp smooth reads it)
  predictions_smoothed.csv  with --smooth kalman|savgol|median: the trajectories smoothed (kp smooth), with
                            predictions_smoothing/ (a figure per keypoint, report.md); overlay videos show them

predictions.csv grows as the job goes (flushed after every batch): a job killed on a long video leaves a CSV valid
up to its last complete row, and the same command with --resume goes on from there (the last image or frame written
is predicted again, in case it was cut short); the overlay videos are drawn at the end, from the rows.

--each-video (many videos: `kp predict MODEL videos/ --each-video`): each video gets DIR/<video name>/ with the files
above and summary.json when it is finished; a table at the end gives each video's frames, seconds, frames/s, mean
score and share of scores below --threshold. A rerun skips the finished videos and resumes a stopped one; a video that
cannot be read is skipped, counted and named, the rest done.

Several models before the inputs (run directories, .ckpt or .onnx files; the leading paths that are models, as kp
refine tells them) are an ensemble: every model predicts every image or frame, and predictions.csv's x and y are the
members' median, the score their mean, the radius their median (empty where a member has no calibration), and
<keypoint>_ens_var after the usual columns their spread: the variance of x plus that of y across members, px². The
models must share keypoint names, input preprocessing and calibration alpha (else a one-line refusal naming two).
With --each-video too (`kp predict RUN1 RUN2 RUN3 videos/ --each-video`): the models are loaded once for all videos.

Scores are the heatmap peak (or the visibility probability), times the flip agreement with --flip (docs/use.md,
"Scores").
"""

from __future__ import annotations

from pathlib import Path

from kp.cli.common import count, fraction, is_model, parser, user_errors_in_one_line
from kp.defaults import SCORE_THRESHOLD
from kp.errors import InputError

# The choices, as kp.predict.writers.FORMATS and kp.trajectories.smooth.METHODS (tests/test_cli.py checks): written
# here so that --help and a wrong choice answer without importing torch.
FORMATS = ("dlc", "coco", "dlc-poses", "slp", "nwb")
METHODS = ("kalman", "savgol", "median")


def main(argv: list[str] | None = None) -> None:
    command = parser("kp predict", __doc__)
    command.add_argument(
        "paths",
        nargs="+",
        help="a run directory, a checkpoint file or an exported .onnx file (several: an ensemble), then images, "
        "folders, globs, videos",
    )
    command.add_argument("--out", type=Path, default=Path("predictions"))
    command.add_argument(
        "--flip", action="store_true", help="test-time flip: average with the mirror image's prediction"
    )
    command.add_argument("--format", action="append", choices=FORMATS, default=[], help="also write this format")
    command.add_argument(
        "--threshold",
        type=fraction,
        default=SCORE_THRESHOLD,
        help="scores below it are faded (and left out of dlc); 0 to 1",
    )
    command.add_argument("--no-overlays", dest="overlays", action="store_false", help="no pictures, CSV only")
    command.add_argument("--detect", choices=["faces"], help="find faces first (face models), one row per face")
    command.add_argument("--batch-size", type=count, default=32)
    command.add_argument("--workers", type=int, default=2, help="DataLoader workers reading and preprocessing")
    command.add_argument("--every", type=count, default=1, help="videos: every N-th frame")
    command.add_argument("--start", type=int, default=0, help="videos: first frame")
    command.add_argument("--end", type=int, default=None, help="videos: stop before this frame")
    command.add_argument(
        "--smooth",
        choices=METHODS,
        help="also smooth the trajectories (kp smooth): predictions_smoothed.csv, figures, report; videos show them",
    )
    command.add_argument(
        "--resume", action="store_true", help="go on with DIR/predictions.csv of a job that stopped: skip what it has"
    )
    command.add_argument(
        "--each-video",
        action="store_true",
        help="a folder DIR/<video>/ per video, a table of them; reruns skip done ones",
    )
    args = command.parse_intermixed_args(argv)  # inputs and options in any order
    with user_errors_in_one_line(args.verbose):
        models, inputs = _models_and_inputs(args.paths)
        from kp.predict.predict import predict_inputs, predict_videos

        if args.each_video:  # every option but --resume, which is implied: a stopped video goes on
            own = ("paths", "out", "verbose", "resume", "each_video", "format")
            options = {key: value for key, value in vars(args).items() if key not in own}
            predict_videos(models, inputs, args.out, formats=tuple(args.format), **options)
            return
        predict_inputs(
            models[0] if len(models) == 1 else models,
            inputs,
            args.out,
            flip=args.flip,
            formats=tuple(args.format),
            overlays=args.overlays,
            threshold=args.threshold,
            detect=args.detect,
            batch_size=args.batch_size,
            workers=args.workers,
            every=args.every,
            start=args.start,
            end=args.end,
            resume=args.resume,
            smooth=args.smooth,
        )


def _models_and_inputs(paths: list[str]) -> tuple[list[str], list[str]]:
    """The leading paths that are models (at least the first) and the inputs after them."""
    number = max(next((i for i, path in enumerate(paths) if not is_model(Path(path))), len(paths)), 1)
    models, inputs = paths[:number], paths[number:]
    if not inputs:
        raise InputError("kp predict needs a model and an input: kp predict MODEL [MODEL...] INPUT...")
    return models, inputs
