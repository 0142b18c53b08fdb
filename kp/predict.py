"""Keypoints for new images and videos from a trained model:

    python -m kp.predict MODEL INPUT... [--out DIR] [--flip] [--format dlc] [--format coco] [--detect faces]
    kp predict ...

MODEL: a run directory (its best checkpoint), a checkpoint file, or an ONNX file from kp export. INPUT: image files, folders (searched
recursively; jpg, jpeg, png, bmp, tif, any case), globs, and videos (mp4, avi, mov, mkv; --every N, --start, --end).
Keypoints come back in each image's own pixels (x = column, y = row, the top-left pixel's centre at 0, 0).

DIR (default `predictions/`) gets
  predictions.csv           one row per image, frame or face: file, frame, [face, box], status, then
                            <keypoint>_x, <keypoint>_y, <keypoint>_score, <keypoint>_radius for every keypoint
                            (radius: the calibrated uncertainty circle in the image's pixels, holding the true point
                            with probability 1 - alpha; empty for a model without calibration, README: Calibrated
                            uncertainty)
  CollectedData_kp.csv      with --format dlc: DeepLabCut's labelled-data layout (three header rows; points scored
                            below --threshold left empty, as unlabelled)
  predictions_coco.json     with --format coco: COCO keypoint results (x, y, score triples)
  overlays/<name>.png       each image with its predictions and their radius circles (off with --no-overlays)
  overlays/<video>.mp4      each video, annotated, one frame per predicted frame
  skipped.csv               unreadable images or frames (file, frame, reason), also listed at the end

Scores are the heatmap peak (or the visibility probability), times the flip agreement with --flip (README: Scores).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch.utils.data import DataLoader

from kp.errors import user_errors_in_one_line
from kp.inference import Predictor, load
from kp.overlay import draw
from kp.sources import Cropper, ImageFiles, InputError, Item, VideoFrames, collate, expand_inputs, video_info

FORMATS = ("dlc", "coco")


class Writer:
    """Collects prediction rows and writes predictions.csv and the other formats at the end."""

    def __init__(self, out: Path, names: list[str], faces: bool):
        self.out, self.names, self.faces = out, names, faces
        self.rows: list[dict] = []
        self.skipped: list[tuple[str, int | None, str]] = []

    def add(self, item: Item, keypoints: np.ndarray, scores: np.ndarray, radius: np.ndarray) -> None:
        if self.faces and not item.tensors:
            self.rows.append({"file": item.file, "frame": item.frame, "face": None, "box": None, "status": "no face",
                              "keypoints": None, "scores": None, "radius": None})
        for face, (box, points, point_scores, point_radius) in enumerate(zip(item.boxes, keypoints, scores, radius)):
            self.rows.append({"file": item.file, "frame": item.frame, "face": face if self.faces else None,
                              "box": box, "status": "ok", "keypoints": points, "scores": point_scores,
                              "radius": point_radius})

    def skip(self, item: Item) -> None:
        self.skipped.append((item.file, item.frame, item.error))

    def write_csv(self) -> Path:
        path = self.out / "predictions.csv"
        header = ["file", "frame"] + (["face", "box_x", "box_y", "box_w", "box_h"] if self.faces else []) + ["status"]
        header += [f"{name}_{column}" for name in self.names for column in ("x", "y", "score", "radius")]
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            for row in self.rows:
                values = [row["file"], "" if row["frame"] is None else row["frame"]]
                if self.faces:
                    values += ["" if row["face"] is None else row["face"], *(row["box"] or [""] * 4)]
                values.append(row["status"])
                if row["keypoints"] is None:
                    values += [""] * (4 * len(self.names))
                else:
                    for (x, y), score, radius in zip(row["keypoints"], row["scores"], row["radius"]):
                        values += [f"{x:.3f}", f"{y:.3f}", f"{score:.4f}", f"{radius:.3f}" if np.isfinite(radius) else ""]
                writer.writerow(values)
        if self.skipped:
            with open(self.out / "skipped.csv", "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(["file", "frame", "reason"])
                writer.writerows([file_, "" if frame is None else frame, reason] for file_, frame, reason in self.skipped)
        return path

    def _row_name(self, row: dict) -> str:
        """A DeepLabCut-style image path: the file, or <video>/img<frame>.png for a frame; #face<i> after the first."""
        name = row["file"] if row["frame"] is None else f"{Path(row['file']).stem}/img{row['frame']:05d}.png"
        return name if not row["face"] else f"{name}#face{row['face']}"

    def write_dlc(self, threshold: float) -> Path:
        path = self.out / "CollectedData_kp.csv"
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["scorer"] + ["kp"] * 2 * len(self.names))
            writer.writerow(["bodyparts"] + [name for name in self.names for _ in "xy"])
            writer.writerow(["coords"] + ["x", "y"] * len(self.names))
            for row in self.rows:
                if row["keypoints"] is None:
                    continue
                values = [self._row_name(row)]
                for (x, y), score in zip(row["keypoints"], row["scores"]):
                    values += [f"{x:.3f}", f"{y:.3f}"] if score >= threshold else ["", ""]
                writer.writerow(values)
        return path

    def write_coco(self) -> Path:
        path = self.out / "predictions_coco.json"
        image_ids: dict[tuple, int] = {}
        results = []
        for row in self.rows:
            if row["keypoints"] is None:
                continue
            image_id = image_ids.setdefault((row["file"], row["frame"]), len(image_ids))
            triples = np.concatenate([row["keypoints"], row["scores"][:, None]], axis=1)
            result = {"image_id": image_id, "file_name": row["file"], "frame": row["frame"], "category_id": 1,
                      "keypoints": [round(float(v), 4) for v in triples.ravel()],
                      "score": round(float(row["scores"].mean()), 4)}
            if row["box"] is not None:
                result["bbox"] = list(row["box"])
            results.append(result)
        path.write_text(json.dumps(results))
        return path


class Overlays:
    """overlays/<name>.png per image and overlays/<video>.mp4 per video, names made unique."""

    def __init__(self, out: Path, predictor: Predictor, threshold: float):
        self.folder = out / "overlays"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meta, self.threshold = predictor.meta, threshold
        self.used: set[str] = set()
        self.videos: dict[str, cv2.VideoWriter] = {}

    def _name(self, path: Path, suffix: str) -> Path:
        name, n = path.stem, 1
        while name in self.used:
            n += 1
            name = f"{path.stem}_{n}"
        self.used.add(name)
        return self.folder / f"{name}{suffix}"

    def add(self, item: Item, keypoints: np.ndarray, scores: np.ndarray, radius: np.ndarray,
            fps: float | None = None) -> None:
        picture = draw(item.source, keypoints, scores, self.meta, self.threshold, item.boxes, radius)
        bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        if item.frame is None:
            cv2.imwrite(str(self._name(Path(item.file), ".png")), bgr)
            return
        if item.file not in self.videos:
            height, width = bgr.shape[:2]
            self.videos[item.file] = cv2.VideoWriter(str(self._name(Path(item.file), ".mp4")),
                                                     cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        self.videos[item.file].write(bgr)

    def close(self) -> None:
        for video in self.videos.values():
            video.release()


def predict(model: str | Path | Predictor, inputs: list[str], out: Path, flip: bool = False, formats: tuple[str, ...] = (),
            overlays: bool = True, threshold: float = 0.3, detect: str | None = None, batch_size: int = 32,
            workers: int = 2, every: int = 1, start: int = 0, end: int | None = None,
            console: Console | None = None) -> dict:
    """Predict every input with a model (a path for kp.load, or a Predictor); write out's files; return the summary
    (counts, wall time, images/s)."""
    console = console or Console(stderr=True)
    predictor = model if isinstance(model, Predictor) else load(model)
    images, videos = expand_inputs(inputs)
    face_crop = None
    if detect == "faces":
        if not predictor.spec.face_crop:
            raise InputError(f"--detect faces needs a face-landmark model (data=facial or facial68); {model} was "
                             f"trained on {predictor.spec.dataset}")
        face_crop = tuple(predictor.spec.face_crop)
    out.mkdir(parents=True, exist_ok=True)
    cropper = Cropper(predictor.preprocess, face_crop, keep_source=overlays)
    writer = Writer(out, predictor.meta.names, faces=face_crop is not None)
    drawer = Overlays(out, predictor, threshold) if overlays else None
    sources = [(None, DataLoader(ImageFiles(images, cropper), batch_size=batch_size, num_workers=workers,
                                 collate_fn=collate), len(images))] if images else []
    for video in videos:
        frames = VideoFrames(video, cropper, every, start, end)
        fps = video_info(video)[1] / every
        sources.append((fps, DataLoader(frames, batch_size=batch_size, num_workers=min(workers, 1),
                                        collate_fn=collate), len(frames.wanted())))
    started, predicted = time.perf_counter(), 0
    columns = [TextColumn("[bold]predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[rate]}")]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("predict", total=sum(total for _, _, total in sources), rate="")
        for fps, loader, _ in sources:
            for items, batch, affines in loader:
                keypoints, scores, radius = (predictor.predict_with_radius(batch, affines, flip) if batch is not None
                                             else ([], [], []))
                offset = 0
                for item in items:
                    if item.error:
                        writer.skip(item)
                        continue
                    n = len(item.tensors)
                    writer.add(item, keypoints[offset:offset + n], scores[offset:offset + n], radius[offset:offset + n])
                    if drawer:
                        drawer.add(item, keypoints[offset:offset + n], scores[offset:offset + n],
                                   radius[offset:offset + n], fps)
                    offset += n
                predicted += len(items)
                progress.update(task, advance=len(items),
                                rate=f"{predicted / (time.perf_counter() - started):.1f} images/s")
    if drawer:
        drawer.close()
    written = [writer.write_csv()]
    if "dlc" in formats:
        written.append(writer.write_dlc(threshold))
    if "coco" in formats:
        written.append(writer.write_coco())
    wall = time.perf_counter() - started
    summary = {"images": len(images), "videos": len(videos), "predicted": predicted - len(writer.skipped),
               "rows": len(writer.rows), "no_face": sum(row["status"] == "no face" for row in writer.rows),
               "skipped": len(writer.skipped), "wall_s": wall, "images_per_s": predicted / wall if wall else 0.0,
               "files": [str(path) for path in written]}
    _print_summary(console, summary, writer.skipped, out)
    if flip not in predictor.calibrations:  # say why the radius columns are empty
        console.print(f"no uncertainty radius: the model has no calibration for flip={flip}; "
                      f"`kp evaluate RUN{' --flip' if flip else ''}` calibrates it on the validation split")
    return summary


def _print_summary(console: Console, summary: dict, skipped: list, out: Path) -> None:
    table = Table(title="kp predict")
    table.add_column("")
    table.add_column("", justify="right")
    for label, key in [("image files", "images"), ("videos", "videos"), ("images/frames predicted", "predicted"),
                       ("CSV rows", "rows"), ("no face found", "no_face"), ("skipped (unreadable)", "skipped")]:
        table.add_row(label, str(summary[key]))
    table.add_row("wall time", f"{summary['wall_s']:.1f} s")
    table.add_row("speed", f"{summary['images_per_s']:.1f} images/s")
    console.print(table)
    for _, _, reason in skipped[:20]:
        console.print(f"  skipped: {reason}")
    if len(skipped) > 20:
        console.print(f"  ... and {len(skipped) - 20} more (all in {out / 'skipped.csv'})")
    console.print(f"written: {', '.join(summary['files'])}" + (f", {out / 'overlays'}/" if (out / "overlays").exists() else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kp predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run directory, a checkpoint file or an exported .onnx file")
    parser.add_argument("inputs", nargs="+", help="images, folders, globs, videos")
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    parser.add_argument("--flip", action="store_true", help="test-time flip: average with the mirror image's prediction")
    parser.add_argument("--format", action="append", choices=FORMATS, default=[], help="also write this format")
    parser.add_argument("--threshold", type=float, default=0.3, help="scores below it are faded (and left out of dlc)")
    parser.add_argument("--no-overlays", dest="overlays", action="store_false", help="no pictures, CSV only")
    parser.add_argument("--detect", choices=["faces"], help="find faces first (face models), one row per face")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers reading and preprocessing")
    parser.add_argument("--every", type=int, default=1, help="videos: every N-th frame")
    parser.add_argument("--start", type=int, default=0, help="videos: first frame")
    parser.add_argument("--end", type=int, default=None, help="videos: stop before this frame")
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        predict(args.model, args.inputs, args.out, args.flip, tuple(args.format), args.overlays, args.threshold,
                args.detect, args.batch_size, args.workers, args.every, args.start, args.end)


if __name__ == "__main__":
    main()
