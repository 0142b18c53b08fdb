"""`kp refine` (kp/cli/refine.py): predict videos with one or more runs, score every frame by how wrong the model
probably is (kp.refine.score), pick varied bad frames (kp.refine.pick) and write them as a labelling job
(kp.refine.job) with a contact sheet."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from kp.data.base import KeypointMeta
from kp.errors import InputError
from kp.inference.load import load
from kp.inference.predictor import Predictor
from kp.predict.overlay import draw
from kp.predict.sources import Cropper, VideoFrames, collate, expand_inputs
from kp.refine.job import Pick, write_job
from kp.refine.pick import pick, thumbnail
from kp.refine.score import FramePredictions, outlier_scores, signals

TILE = 320  # px: the width of a frame in the contact sheet


def refine(
    runs: list[str],
    inputs: list[str],
    out: Path,
    frames: int = 20,
    every: int = 1,
    flip: bool = False,
    threshold: float = 0.3,
    batch_size: int = 32,
    console: Console | None = None,
) -> list[Pick]:
    """Pick `frames` frames of the videos to label and write the job to `out`; return the picks."""
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
    images, videos = expand_inputs(inputs)
    if images:
        raise InputError(f"{images[0]}: kp refine picks frames of videos (mp4, avi, mov, mkv), not still images")
    per_video = []
    with _progress(console) as progress:
        for video in videos:
            predictions, embedding = _predict_video(predictors, video, every, flip, batch_size, progress)
            per_video.append((video, predictions, embedding))
    found = [signals(predictions, threshold) for _, predictions, _ in per_video]
    shared = set.intersection(*(set(f) for f in found))  # every video has the same signals, jump needs 3 frames
    scores, reasons = outlier_scores({name: np.concatenate([f[name] for f in found]) for name in shared})
    chosen = pick(scores, np.concatenate([embedding for _, _, embedding in per_video]), frames)
    picks = sorted(_picks(per_video, chosen, scores, reasons), key=lambda p: -p.outlier)
    write_job(out, picks, predictors[0].meta, [str(Path(run).resolve()) for run in runs], threshold)
    contact_sheet(picks, predictors[0].meta, threshold, out / "refine.png")
    return picks


def _picks(per_video: list, chosen: np.ndarray, scores: np.ndarray, reasons: list[str]) -> Iterator[Pick]:
    """The chosen rows (indices into all videos' frames, in order) as Picks, their frames read again from the videos."""
    offset = 0
    for video, predictions, _ in per_video:
        mine = {
            int(predictions.frames[c - offset]): c for c in chosen if offset <= c < offset + len(predictions.frames)
        }
        for frame, image in read_frames(video, sorted(mine)):
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


def _progress(console: Console) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console)


def _predict_video(
    predictors: list[Predictor], video: Path, every: int, flip: bool, batch_size: int, progress: Progress
) -> tuple[FramePredictions, np.ndarray]:
    """Every run's predictions on the frames of `video` (every `every`-th), and each frame's thumbnail embedding."""
    results, embedding = [], {}
    for number, predictor in enumerate(predictors, 1):
        source = VideoFrames(video, Cropper(predictor.preprocess, keep_source=number == 1), every)
        total = len(source.wanted())
        if total == 0:
            raise InputError(f"{video}: no frames to read (an empty video)")
        label = f"{video.name}" + (f" (run {number} of {len(predictors)})" if len(predictors) > 1 else "")
        task = progress.add_task(label, total=total)
        found: dict[int, tuple] = {}
        for items, batch, affines in DataLoader(source, batch_size=batch_size, num_workers=0, collate_fn=collate):
            if batch is not None:
                plain = predictor.predict_with_radius(batch, affines)
                mirrored = predictor.predict_batch(batch, affines, flip=True)[0] if flip else plain.keypoints
                good = [item for item in items if not item.error]
                for j, item in enumerate(good):
                    found[item.frame] = (plain.keypoints[j], plain.scores[j], plain.radius[j], mirrored[j])
                    if item.source is not None:
                        embedding[item.frame] = thumbnail(item.source)
            progress.update(task, advance=len(items))
        results.append(found)
    frames = sorted(set.intersection(*(set(found) for found in results)))
    if not frames:
        raise InputError(f"{video}: no frame could be decoded (an empty or broken video)")
    stacked = [np.array([[found[f][part] for f in frames] for found in results]) for part in range(4)]
    predictions = FramePredictions(np.array(frames), *stacked[:3], flipped=stacked[3] if flip else None)
    return predictions, np.array([embedding[f] for f in frames])


def read_frames(video: Path, frames: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame, RGB image) for the given frame numbers (ascending), read in one pass."""
    capture = cv2.VideoCapture(str(video))
    try:
        position = 0
        for target in frames:
            while position < target and capture.grab():
                position += 1
            ok, image = capture.read()
            position += 1
            if ok:
                yield target, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def contact_sheet(picks: list[Pick], meta: KeypointMeta, threshold: float, path: Path, columns: int = 5) -> None:
    """The picked frames with their predictions (no radius circles: at this size they hide the frame), each captioned
    with its video, frame and why it was picked."""
    tiles = []
    for number, p in enumerate(picks, 1):
        picture = draw(p.image, p.keypoints[None], p.scores[None], meta, threshold)
        height = round(picture.shape[0] * TILE / picture.shape[1])
        picture = cv2.resize(picture, (TILE, height), interpolation=cv2.INTER_AREA)
        band = np.full((40, TILE, 3), 255, np.uint8)
        cv2.putText(band, f"{number}. {p.video.stem} #{p.frame}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(band, p.reason, (6, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (160, 0, 0), 1)
        tiles.append(np.vstack([band, picture]))
    if not tiles:
        return
    height = max(tile.shape[0] for tile in tiles)
    tiles = [np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255) for tile in tiles]
    columns = min(columns, len(tiles))
    tiles += [np.full_like(tiles[0], 255)] * (math.ceil(len(tiles) / columns) * columns - len(tiles))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
