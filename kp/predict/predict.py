"""Keypoints for new images and videos from a trained model (`kp predict`, kp/cli/predict.py): one row per image,
frame or face in predictions.csv, overlays, and the DeepLabCut and COCO formats; with --each-video, a folder per
video and a table of them all (predict_videos). With several models (an ensemble), every model predicts every image
and the CSV gets their median position, mean score, median radius and spread (kp.trajectories.ensemble)."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.data import DataLoader

from kp.data.video import video_info
from kp.defaults import SCORE_THRESHOLD
from kp.errors import DataError, InputError
from kp.formats.predictions_csv import read_rows, sidecar
from kp.inference.load import load
from kp.inference.predictor import Predictor
from kp.inference.sources import Cropper, ImageFiles, VideoFrames, collate, expand_inputs
from kp.predict import pose_files
from kp.predict.writers import Overlays, Writer
from kp.trajectories.ensemble import ensemble_stats
from kp.trajectories.smooth_csv import smooth_file

Model = str | Path | Predictor


def predict_inputs(
    model: Model | list[Model],
    inputs: list[str],
    out: Path,
    flip: bool = False,
    formats: tuple[str, ...] = (),
    overlays: bool = True,
    threshold: float = SCORE_THRESHOLD,
    detect: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    every: int = 1,
    start: int = 0,
    end: int | None = None,
    console: Console | None = None,
    resume: bool = False,
    smooth: str | None = None,
) -> dict:
    """Predict every input with a model (a path for kp.load, or a Predictor), or with an ensemble (a list of two or
    more: _ensemble); write out's files; return the summary (counts, wall time, images/s). predictions.csv grows batch
    by batch; with resume, the images and frames it already has are not predicted again. smooth (a kp.trajectories
    method): predictions_smoothed.csv and its figures and report too, and the overlay videos show the smoothed
    points."""
    console = console or Console(stderr=True)
    members = _ensemble(model if isinstance(model, list) else [model], flip)
    predictor = members[0]  # the ensemble's keypoints, preprocessing and calibration alpha are all members'
    images, videos = expand_inputs(inputs)
    pose_files.check_targets(out, formats, images)
    face_crop = _face_crop(predictor, detect, model)
    out.mkdir(parents=True, exist_ok=True)
    cropper = Cropper(predictor.preprocess, face_crop, keep_source=overlays)
    writer = Writer(out, predictor.meta.names, faces=face_crop is not None, resume=resume, ensemble=len(members) > 1)
    resumed, skipped_before = len(writer.done), len(writer.skipped)
    drawer = Overlays(out, predictor, threshold) if overlays else None
    sources = _sources(images, videos, writer, cropper, batch_size, workers, every, start, end)
    started = time.perf_counter()
    try:
        predicted = _predict_all(members, sources, flip, writer, drawer, console)
    finally:
        written = [writer.close()]  # what was predicted stays, also when the job dies
    rows = writer.rows
    calibrated = all(flip in member.calibrations for member in members)
    # For kp smooth: what the radius means, and how many members the spread comes from.
    meta = {"alpha": predictor.calibrations[flip].alpha, "flip": flip} if calibrated else {}
    meta.update({"members": len(members)} if len(members) > 1 else {})
    if meta:
        sidecar(writer.path).write_text(json.dumps(meta))
    if smooth:
        smoothed = smooth_file(writer.path, smooth, threshold=threshold, console=console)
        written.append(smoothed.csv)
        rows = read_rows(smoothed.csv, predictor.meta.names, faces=face_crop is not None, ensemble=writer.ensemble)
    if drawer and videos:
        _draw_videos(drawer, videos, rows, every, console)
    written += [writer.write_dlc(threshold)] if "dlc" in formats else []
    written += [writer.write_coco()] if "coco" in formats else []
    written += pose_files.write(writer.rows, predictor.meta, out, formats)
    wall = time.perf_counter() - started
    summary = {
        "images": len(images),
        "videos": len(videos),
        "resumed": resumed,
        "predicted": predicted - (len(writer.skipped) - skipped_before),  # this run's
        "rows": len(writer.rows),
        "no_face": sum(row["status"] == "no face" for row in writer.rows),
        "skipped": len(writer.skipped),
        "wall_s": wall,
        "images_per_s": predicted / wall if wall else 0.0,
        "files": [str(path) for path in written],
    }
    _print_summary(console, summary, writer.skipped, out)
    if not calibrated:  # say why the radius columns are empty
        uncalibrated = next(member for member in members if flip not in member.calibrations)
        console.print(f"no uncertainty radius: {uncalibrated.radius_hint(flip)}")
    return summary


def _ensemble(models: list[Model], flip: bool) -> list[Predictor]:
    """The models loaded, each checked for flip (refused before any file is written); an ensemble's members must
    share keypoint names, input preprocessing and calibration alpha, else a one-line InputError naming two."""
    members = [model if isinstance(model, Predictor) else load(model) for model in models]
    for member in members:
        member.check_flip(flip)
    first, alpha = members[0], lambda p: p.calibrations[flip].alpha if flip in p.calibrations else None
    names = [str(model.checkpoint) if isinstance(model, Predictor) else str(model) for model in models]
    for name, member in zip(names[1:], members[1:]):
        differ = [
            what
            for what, same in [
                ("keypoint names", member.meta.names == first.meta.names),
                ("input preprocessing", _preprocessing(member) == _preprocessing(first)),
                ("calibration alpha", None in (alpha(member), alpha(first)) or alpha(member) == alpha(first)),
            ]
            if not same
        ]
        if differ:
            raise InputError(
                f"{name}: its {' and '.join(differ)} differ from {names[0]}'s: an ensemble's models must be trained "
                f"on the same keypoints and data config (kp sweep -m experiment=X seed=0,1,2, docs/use.md)"
            )
    return members


def _preprocessing(predictor: Predictor) -> tuple:
    spec = predictor.spec
    return spec.input_shape, spec.fit_size, spec.transforms, spec.face_crop


VIDEO_SUMMARY = "summary.json"  # in a video's folder: written when its job is finished, read on a rerun


def predict_videos(
    model: Model | list[Model], inputs: list[str], out: Path, console: Console | None = None, **options
) -> list[dict]:
    """kp predict --each-video: every video of `inputs` (files, folders, globs) into out/<video name>/, with
    predict_inputs's files and options, by one model or an ensemble (a list, loaded once for all the videos). A video
    whose folder holds summary.json (a finished job) is not predicted again; a folder without it (a job that stopped)
    is resumed; a video that cannot be read is skipped, counted and said, the rest done. Ends with a table: frames,
    seconds, frames/s, mean score and the share of scores below the threshold per video. Returns the table's rows."""
    console = console or Console(stderr=True)
    # models that cannot run as asked, or together, stop here, not per video
    members = _ensemble(model if isinstance(model, list) else [model], options.get("flip", False))
    predictor = members if len(members) > 1 else members[0]
    images, videos = expand_inputs(inputs)
    if images:
        raise InputError(f"{images[0]}: --each-video predicts videos; give the {len(images)} image file(s) apart")
    folders = [video.stem for video in videos]
    twice = next((name for name in folders if folders.count(name) > 1), None)
    if twice:
        raise InputError(f"two videos are named {twice}: --each-video writes one folder per video name; rename one")
    threshold = options.get("threshold", SCORE_THRESHOLD)
    table, failed = [], []
    for number, video in enumerate(videos, 1):
        folder = out / video.stem
        if (folder / VIDEO_SUMMARY).is_file():
            table.append({**json.loads((folder / VIDEO_SUMMARY).read_text()), "status": "done before"})
            continue
        console.print(f"[bold]video {number} of {len(videos)}: {video}")
        try:
            video_info(video)  # an unreadable video leaves no folder behind
            options["resume"] = (folder / "predictions.csv").is_file()
            summary = predict_inputs(predictor, [str(video)], folder, console=console, **options)
        except (InputError, DataError) as error:  # an unreadable video: the others go on
            failed.append((video, str(error)))
            continue
        row = {"video": str(video), "folder": str(folder), **_score_summary(folder, members, threshold)}
        row.update(seconds=summary["wall_s"], frames_per_s=summary["images_per_s"])
        (folder / VIDEO_SUMMARY).write_text(json.dumps(row, indent=1))
        table.append({**row, "status": "predicted"})
    _print_videos(console, table, failed, threshold)
    return table


def _score_summary(folder: Path, members: list[Predictor], threshold: float) -> dict:
    """frames, mean keypoint score and the share of scores below the threshold, from the folder's predictions.csv."""
    rows = read_rows(folder / "predictions.csv", members[0].meta.names, faces=False, ensemble=len(members) > 1)
    scores = [score for row in rows if row["scores"] is not None for score in row["scores"]]
    return {
        "frames": len(rows),
        "mean_score": sum(scores) / len(scores) if scores else float("nan"),
        "below_threshold": sum(score < threshold for score in scores) / len(scores) if scores else float("nan"),
    }


def _print_videos(console: Console, table: list[dict], failed: list[tuple[Path, str]], threshold: float) -> None:
    summary = Table(title=f"kp predict --each-video: {len(table)} video(s) done, {len(failed)} skipped")
    for column in ("video", "frames", "seconds", "frames/s", "mean score", f"scores < {threshold:g}", ""):
        summary.add_column(column, justify="left" if column == "video" else "right", overflow="fold")
    for row in table:
        summary.add_row(
            Path(row["video"]).name,
            str(row["frames"]),
            f"{row['seconds']:.1f}",
            f"{row['frames_per_s']:.1f}",
            f"{row['mean_score']:.3f}",
            f"{100 * row['below_threshold']:.1f} %",
            row["status"],
        )
    console.print(summary)
    for video, reason in failed:
        console.print(f"  skipped: {reason}" if str(video) in reason else f"  skipped: {video}: {reason}")


def _face_crop(predictor: Predictor, detect: str | None, model) -> tuple[float, float] | None:
    """The crop around each detected face (--detect faces), as the model's training images framed faces."""
    if detect != "faces":
        return None
    if not predictor.spec.face_crop:
        raise InputError(
            f"--detect faces needs a face-landmark model (data=facial or facial68); {model} was "
            f"trained on {predictor.spec.dataset}"
        )
    return tuple(predictor.spec.face_crop)


def _sources(
    images: list[Path],
    videos: list[Path],
    writer: Writer,
    cropper: Cropper,
    batch_size: int,
    workers: int,
    every: int,
    start: int,
    end: int | None,
) -> list[tuple[DataLoader, int]]:
    """(DataLoader, items to predict) for the image files and for each video, less what the writer already has."""
    sources = []
    todo = [path for path in images if (str(path), None) not in writer.done]
    if todo:
        files = ImageFiles(todo, cropper)
        sources.append((DataLoader(files, batch_size=batch_size, num_workers=workers, collate_fn=collate), len(todo)))
    for video in videos:
        done = {frame for file, frame in writer.done if file == str(video)}
        frames = VideoFrames(video, cropper, every, start, end, done)
        loader = DataLoader(frames, batch_size=batch_size, num_workers=min(workers, 1), collate_fn=collate)
        sources.append((loader, len(frames.wanted())))
    return sources


def _predict_all(
    members: list[Predictor],
    sources: list[tuple[DataLoader, int]],
    flip: bool,
    writer: Writer,
    drawer,
    console: Console,
) -> int:
    """Every source's batches through the model into the writer (and overlays), with a progress bar; the count."""
    started, predicted = time.perf_counter(), 0
    with Progress(*PROGRESS, console=console, transient=False) as progress:
        task = progress.add_task("predicting", total=sum(total for _, total in sources), rate="")
        for loader, _ in sources:
            for items, batch, affines in loader:
                _predict_batch(members, items, batch, affines, flip, writer, drawer)
                predicted += len(items)
                rate = f"{predicted / (time.perf_counter() - started):.1f} images/s"
                progress.update(task, advance=len(items), rate=rate)
    return predicted


def _draw_videos(drawer: Overlays, videos: list[Path], rows: list[dict], every: int, console: Console) -> None:
    """overlays/<video>.mp4 per video, from its finished rows, at the frame rate of the frames predicted."""
    with Progress(*PROGRESS, console=console, transient=False) as progress:
        for video in videos:
            shown = [row for row in rows if row["file"] == str(video)]
            drawing = progress.add_task(f"drawing {video.name}", total=len(shown), rate="")
            drawer.video(str(video), shown, video_info(video)[1] / every, partial(progress.advance, drawing))


PROGRESS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeRemainingColumn(),
    TextColumn("{task.fields[rate]}"),
)


def _predict_batch(members: list[Predictor], items, batch, affines, flip: bool, writer: Writer, drawer) -> None:
    """One DataLoader batch: its rows into the writer (and the file), an overlay per image, unreadable ones skipped."""
    keypoints, scores, radius, spread = _locate(members, batch, affines, flip) if batch is not None else ([],) * 4
    offset = 0
    for item in items:
        if item.error:
            writer.skip(item)
            continue
        n = len(item.tensors)
        before = len(writer.rows)
        part = slice(offset, offset + n)
        writer.add(item, keypoints[part], scores[part], radius[part], None if spread is None else spread[part])
        if drawer and item.frame is None:
            drawer.add(item, writer.rows[before:])
        offset += n
    writer.flush()


def _locate(members: list[Predictor], batch, affines, flip: bool):
    """Keypoints B×K×2, scores, radius and the ensemble's spread B×K (None for one model). An ensemble's keypoints
    are the members' median (ensemble_stats), its scores their mean, its radius their median (NaN where a member has
    none), its spread the members' variance of x plus that of y, px² (population variance, as ensemble_stats)."""
    if len(members) == 1:
        return *members[0].predict_with_radius(batch, affines, flip), None
    predictions = [member.predict_with_radius(batch, affines, flip) for member in members]
    median, variance, score = ensemble_stats(
        np.stack([p.keypoints for p in predictions]), np.stack([p.scores for p in predictions])
    )
    return median, score, np.median(np.stack([p.radius for p in predictions]), axis=0), variance.sum(-1)


def _print_summary(console: Console, summary: dict, skipped: list, out: Path) -> None:
    table = Table(title="kp predict")
    table.add_column("")
    table.add_column("", justify="right")
    for label, key in [
        ("image files", "images"),
        ("videos", "videos"),
        ("kept from before (--resume)", "resumed"),
        ("images/frames predicted", "predicted"),
        ("CSV rows", "rows"),
        ("no face found", "no_face"),
        ("skipped (unreadable)", "skipped"),
    ]:
        table.add_row(label, str(summary[key]))
    table.add_row("wall time", f"{summary['wall_s']:.1f} s")
    table.add_row("speed", f"{summary['images_per_s']:.1f} images/s")
    console.print(table)
    for _, _, reason in skipped[:20]:
        console.print(f"  skipped: {reason}")
    if len(skipped) > 20:
        console.print(f"  ... and {len(skipped) - 20} more (all in {out / 'skipped.csv'})")
    console.print(
        f"written: {', '.join(summary['files'])}" + (f", {out / 'overlays'}/" if (out / "overlays").exists() else "")
    )
