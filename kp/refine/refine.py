"""`kp refine` (kp/cli/refine.py): predict videos with one or more runs, score every frame by how wrong the model
probably is (kp.refine.score), pick varied bad frames (kp.refine.pick) and write them as a labelling job
(kp.refine.labelling_job) with a contact sheet (kp.viz.contact_sheet). A frame that cannot be decoded is left
out, counted and said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from kp.data.video import read_frames
from kp.defaults import SCORE_THRESHOLD
from kp.errors import InputError
from kp.inference.load import load
from kp.inference.predictor import Predictor
from kp.inference.sources import Cropper, VideoFrames, collate, expand_inputs
from kp.refine.labelling_job import Pick, write_job
from kp.refine.pick import pick, thumbnail
from kp.refine.score import FramePredictions, outlier_scores, signals
from kp.unsupervised_losses import PRIORS
from kp.viz.contact_sheet import contact_sheet


def refine(
    runs: list[str],
    inputs: list[str],
    out: Path,
    frames: int = 20,
    every: int = 1,
    flip: bool = False,
    threshold: float = SCORE_THRESHOLD,
    batch_size: int = 32,
    console: Console | None = None,
    formats: tuple[str, ...] = (),
) -> list[Pick]:
    """Pick `frames` frames of the videos to label and write the job to `out` (formats: ("labelstudio",) adds Label
    Studio's tasks); return the picks."""
    console = console or Console(stderr=True)
    if frames < 1:
        raise InputError(f"--frames {frames}: pick at least one frame")
    predictors = [load(run) for run in runs]
    for run, predictor in zip(runs[1:], predictors[1:]):
        if predictor.meta.names != predictors[0].meta.names:
            raise InputError(
                f"{run}: predicts {predictor.meta.names}, {runs[0]} predicts {predictors[0].meta.names}: the runs of "
                "one refine job must share their keypoints"
            )
    _say_absent_priors(runs, predictors, console)
    images, videos = expand_inputs(inputs)
    if images:
        raise InputError(f"{images[0]}: kp refine picks frames of videos (mp4, avi, mov, mkv), not still images")
    per_video = []
    with _progress(console) as progress:
        for video in videos:
            predictions, embedding, bad = _predict_video(predictors, video, every, flip, batch_size, progress)
            if bad:
                shown = ", ".join(str(frame) for frame in bad[:10]) + (" ..." if len(bad) > 10 else "")
                console.print(f"{video}: {len(bad)} frame(s) cannot be decoded, left out: {shown}")
            per_video.append((video, predictions, embedding))
    found = [signals(predictions, threshold) for _, predictions, _ in per_video]
    shared = set.intersection(*(set(f) for f in found))  # every video has the same signals, jump needs 3 frames
    scores, reasons = outlier_scores({name: np.concatenate([f[name] for f in found]) for name in shared})
    chosen = pick(scores, np.concatenate([embedding for _, _, embedding in per_video]), frames)
    picks = sorted(_picks(per_video, chosen, scores, reasons, console), key=lambda p: -p.outlier)
    write_job(out, picks, predictors[0].meta, [str(Path(run).resolve()) for run in runs], threshold, formats)
    contact_sheet(picks, predictors[0].meta, threshold, out / "refine.png")
    return picks


def _picks(
    per_video: list, chosen: np.ndarray, scores: np.ndarray, reasons: list[str], console: Console
) -> Iterator[Pick]:
    """The chosen rows (indices into all videos' frames, in order) as Picks, their frames read again from the videos
    (one decoded the first time and not the second is said and left out)."""
    offset = 0
    for video, predictions, _ in per_video:
        mine = {
            int(predictions.frames[c - offset]): c for c in chosen if offset <= c < offset + len(predictions.frames)
        }
        for frame, image in read_frames(video, sorted(mine)):
            if image is None:
                console.print(f"{video}: frame {frame} cannot be decoded a second time: left out of the job")
                continue
            row, i = mine[frame], mine[frame] - offset
            yield Pick(
                video,
                frame,
                image,
                predictions.keypoints[:, i].mean(axis=0),
                predictions.scores[:, i].mean(axis=0),
                float(scores[row]),
                reasons[row],
            )
        offset += len(predictions.frames)


def _say_absent_priors(runs: list[str], predictors: list[Predictor], console: Console) -> None:
    """One line per pose prior signal (kp.refine.score) that a run lacks, with the reason."""
    for name in PRIORS:
        lacking = [
            (run, p.pose_priors_absent[name]) for run, p in zip(runs, predictors) if name in p.pose_priors_absent
        ]
        if lacking:
            console.print(f"no {name} signal: {lacking[0][0]}: {lacking[0][1]}")


def _progress(console: Console) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console)


def _predict_video(
    predictors: list[Predictor], video: Path, every: int, flip: bool, batch_size: int, progress: Progress
) -> tuple[FramePredictions, np.ndarray, list[int]]:
    """Every run's predictions on the frames of `video` (every `every`-th), each frame's thumbnail embedding, and the
    frames that could not be decoded."""
    results, embedding, bad = [], {}, set()
    for number, predictor in enumerate(predictors, 1):
        source = VideoFrames(video, Cropper(predictor.preprocess, keep_source=number == 1), every)
        total = len(source.wanted())
        if total == 0:
            raise InputError(f"{video}: no frames to read (an empty video)")
        label = f"{video.name}" + (f" (run {number} of {len(predictors)})" if len(predictors) > 1 else "")
        task = progress.add_task(label, total=total)
        found: dict[int, tuple] = {}
        for items, batch, affines in DataLoader(source, batch_size=batch_size, num_workers=0, collate_fn=collate):
            bad.update(item.frame for item in items if item.error)
            if batch is not None:
                plain = predictor.predict_with_radius(batch, affines)
                mirrored = predictor.predict_batch(batch, affines, flip=True)[0] if flip else plain.keypoints
                priors = predictor.pose_prior_errors(plain.keypoints, affines)
                nan = np.full(plain.scores.shape, np.nan)
                prior_errors = np.stack([priors.get(name, nan) for name in PRIORS], axis=1)  # B×P×K, source pixels
                good = [item for item in items if not item.error]
                for j, item in enumerate(good):
                    found[item.frame] = (
                        plain.keypoints[j],
                        plain.scores[j],
                        plain.radius[j],
                        mirrored[j],
                        prior_errors[j],
                    )
                    if item.source is not None:
                        embedding[item.frame] = thumbnail(item.source)
            progress.update(task, advance=len(items))
        results.append(found)
    frames = sorted(set.intersection(*(set(found) for found in results)))
    if not frames:
        raise InputError(f"{video}: no frame could be decoded (an empty or broken video)")
    stacked = [np.array([[found[f][part] for f in frames] for found in results]) for part in range(5)]
    everyone = [all(name in predictor.pose_priors for predictor in predictors) for name in PRIORS]
    priors = {name: stacked[4][:, :, i] for i, (name, ok) in enumerate(zip(PRIORS, everyone)) if ok}
    predictions = FramePredictions(np.array(frames), *stacked[:3], flipped=stacked[3] if flip else None, priors=priors)
    return predictions, np.array([embedding[f] for f in frames]), sorted(bad)
