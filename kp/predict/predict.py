"""Keypoints for new images and videos from a trained model (`kp predict`, kp/cli/predict.py): one row per image,
frame or face in predictions.csv, overlays, and the DeepLabCut and COCO formats."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.data import DataLoader

from kp.errors import InputError
from kp.inference.load import load
from kp.inference.predictor import Predictor
from kp.predict.sources import Cropper, ImageFiles, VideoFrames, collate, expand_inputs, video_info
from kp.predict.writers import Overlays, Writer


def predict_inputs(
    model: str | Path | Predictor,
    inputs: list[str],
    out: Path,
    flip: bool = False,
    formats: tuple[str, ...] = (),
    overlays: bool = True,
    threshold: float = 0.3,
    detect: str | None = None,
    batch_size: int = 32,
    workers: int = 2,
    every: int = 1,
    start: int = 0,
    end: int | None = None,
    console: Console | None = None,
) -> dict:
    """Predict every input with a model (a path for kp.load, or a Predictor); write out's files; return the summary
    (counts, wall time, images/s)."""
    console = console or Console(stderr=True)
    predictor = model if isinstance(model, Predictor) else load(model)
    images, videos = expand_inputs(inputs)
    face_crop = None
    if detect == "faces":
        if not predictor.spec.face_crop:
            raise InputError(
                f"--detect faces needs a face-landmark model (data=facial or facial68); {model} was "
                f"trained on {predictor.spec.dataset}"
            )
        face_crop = tuple(predictor.spec.face_crop)
    out.mkdir(parents=True, exist_ok=True)
    cropper = Cropper(predictor.preprocess, face_crop, keep_source=overlays)
    writer = Writer(out, predictor.meta.names, faces=face_crop is not None)
    drawer = Overlays(out, predictor, threshold) if overlays else None
    sources = (
        [
            (
                None,
                DataLoader(ImageFiles(images, cropper), batch_size=batch_size, num_workers=workers, collate_fn=collate),
                len(images),
            )
        ]
        if images
        else []
    )
    for video in videos:
        frames = VideoFrames(video, cropper, every, start, end)
        fps = video_info(video)[1] / every
        sources.append(
            (
                fps,
                DataLoader(frames, batch_size=batch_size, num_workers=min(workers, 1), collate_fn=collate),
                len(frames.wanted()),
            )
        )
    started, predicted = time.perf_counter(), 0
    columns = [
        TextColumn("[bold]predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[rate]}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("predict", total=sum(total for _, _, total in sources), rate="")
        for fps, loader, _ in sources:
            for items, batch, affines in loader:
                keypoints, scores, radius = (
                    predictor.predict_with_radius(batch, affines, flip) if batch is not None else ([], [], [])
                )
                offset = 0
                for item in items:
                    if item.error:
                        writer.skip(item)
                        continue
                    n = len(item.tensors)
                    writer.add(
                        item, keypoints[offset : offset + n], scores[offset : offset + n], radius[offset : offset + n]
                    )
                    if drawer:
                        drawer.add(
                            item,
                            keypoints[offset : offset + n],
                            scores[offset : offset + n],
                            radius[offset : offset + n],
                            fps,
                        )
                    offset += n
                predicted += len(items)
                progress.update(
                    task, advance=len(items), rate=f"{predicted / (time.perf_counter() - started):.1f} images/s"
                )
    if drawer:
        drawer.close()
    written = [writer.write_csv()]
    if "dlc" in formats:
        written.append(writer.write_dlc(threshold))
    if "coco" in formats:
        written.append(writer.write_coco())
    wall = time.perf_counter() - started
    summary = {
        "images": len(images),
        "videos": len(videos),
        "predicted": predicted - len(writer.skipped),
        "rows": len(writer.rows),
        "no_face": sum(row["status"] == "no face" for row in writer.rows),
        "skipped": len(writer.skipped),
        "wall_s": wall,
        "images_per_s": predicted / wall if wall else 0.0,
        "files": [str(path) for path in written],
    }
    _print_summary(console, summary, writer.skipped, out)
    if flip not in predictor.calibrations:  # say why the radius columns are empty
        console.print(
            f"no uncertainty radius: the model has no calibration for flip={flip}; "
            f"`kp evaluate RUN{' --flip' if flip else ''}` calibrates it on the validation split"
        )
    return summary


def _print_summary(console: Console, summary: dict, skipped: list, out: Path) -> None:
    table = Table(title="kp predict")
    table.add_column("")
    table.add_column("", justify="right")
    for label, key in [
        ("image files", "images"),
        ("videos", "videos"),
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
