"""What kp predict writes: predictions.csv (and the DeepLabCut and COCO formats), and the overlay pictures and
videos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from kp.errors import InputError
from kp.inference.predictor import Predictor
from kp.predict import pose_files
from kp.predict.overlay import draw
from kp.predict.sources import Item, read_frames

FORMATS = ("dlc", "coco", *pose_files.FORMATS)


def columns(names: list[str], faces: bool) -> list[str]:
    """predictions.csv's header."""
    header = ["file", "frame"] + (["face", "box_x", "box_y", "box_w", "box_h"] if faces else []) + ["status"]
    return header + [f"{name}_{column}" for name in names for column in ("x", "y", "score", "radius")]


def read_rows(path: Path, names: list[str], faces: bool) -> list[dict]:
    """predictions.csv's complete rows, as the Writer holds them; InputError when its columns are not those of this
    model (and --detect), so that a job is never resumed into another model's file."""
    with open(path, newline="") as file:
        lines = list(csv.reader(file))
    header = lines[0] if lines else []
    if header != columns(names, faces):
        raise InputError(
            f"{path}: its columns are not this model's ({len(names)} keypoints{', faces' if faces else ''}): "
            f"resume with the model and options that wrote it, or write to another --out"
        )
    rows = []
    for values in lines[1:]:
        if len(values) != len(header):  # the last line of a killed job, cut short
            break
        cells = dict(zip(header, values))
        points = np.array([[cells[f"{n}_{c}"] or "nan" for c in ("x", "y", "score", "radius")] for n in names])
        ok = cells["status"] == "ok"
        rows.append(
            {
                "file": cells["file"],
                "frame": int(cells["frame"]) if cells["frame"] else None,
                "face": int(cells["face"]) if faces and cells["face"] else None,
                "box": tuple(int(cells[f"box_{c}"]) for c in "xywh") if faces and cells["box_x"] else None,
                "status": cells["status"],
                "keypoints": points[:, :2].astype(float) if ok else None,
                "scores": points[:, 2].astype(float) if ok else None,
                "radius": points[:, 3].astype(float) if ok else None,
            }
        )
    return rows


def _key(row: dict) -> tuple[str, int | None]:
    return row["file"], row["frame"]


def _read_skipped(path: Path) -> list[tuple[str, int | None, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [
            (file_, int(frame) if frame else None, reason)
            for file_, frame, reason in [values for values in list(csv.reader(file))[1:] if len(values) == 3]
        ]


class Writer:
    """Appends prediction rows to predictions.csv as they come (flushed after every batch, so that a killed job
    leaves a CSV valid up to its last complete row) and writes the other formats at the end. With resume, the rows
    already in the file are kept, the last image or frame's rows redone (it may be cut short) and `done` names them,
    so that the job goes on where it stopped."""

    def __init__(self, out: Path, names: list[str], faces: bool, resume: bool = False):
        self.out, self.names, self.faces = out, names, faces
        self.path = out / "predictions.csv"
        self.header = columns(names, faces)
        self.rows: list[dict] = []
        self.skipped: list[tuple[str, int | None, str]] = []
        if resume and self.path.is_file():
            self.rows = read_rows(self.path, names, faces)
            last = _key(self.rows[-1]) if self.rows else None
            self.rows = [row for row in self.rows if _key(row) != last]
            self.skipped = _read_skipped(out / "skipped.csv")
        self.done = {_key(row) for row in self.rows} | {(file, frame) for file, frame, _ in self.skipped}
        self.file = open(self.path, "w", newline="")  # the kept rows written again: a cut-short last line goes
        self.csv = csv.writer(self.file)
        self.csv.writerow(self.header)
        self.csv.writerows(self._values(row) for row in self.rows)
        self.flush()

    def add(self, item: Item, keypoints: np.ndarray, scores: np.ndarray, radius: np.ndarray) -> None:
        added = []
        if self.faces and not item.tensors:
            added.append(
                {
                    "file": item.file,
                    "frame": item.frame,
                    "face": None,
                    "box": None,
                    "status": "no face",
                    "keypoints": None,
                    "scores": None,
                    "radius": None,
                }
            )
        for face, (box, points, point_scores, point_radius) in enumerate(zip(item.boxes, keypoints, scores, radius)):
            added.append(
                {
                    "file": item.file,
                    "frame": item.frame,
                    "face": face if self.faces else None,
                    "box": box,
                    "status": "ok",
                    "keypoints": points,
                    "scores": point_scores,
                    "radius": point_radius,
                }
            )
        self.rows += added
        self.csv.writerows(self._values(row) for row in added)

    def skip(self, item: Item) -> None:
        self.skipped.append((item.file, item.frame, item.error))

    def flush(self) -> None:
        """Everything added so far into the files (after each batch)."""
        self.file.flush()
        if self.skipped:
            with open(self.out / "skipped.csv", "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(["file", "frame", "reason"])
                writer.writerows(
                    [file_, "" if frame is None else frame, reason] for file_, frame, reason in self.skipped
                )

    def close(self) -> Path:
        self.flush()
        self.file.close()
        return self.path

    def _values(self, row: dict) -> list:
        values = [row["file"], "" if row["frame"] is None else row["frame"]]
        if self.faces:
            values += ["" if row["face"] is None else row["face"], *(row["box"] or [""] * 4)]
        values.append(row["status"])
        if row["keypoints"] is None:
            return values + [""] * (4 * len(self.names))
        for (x, y), score, radius in zip(row["keypoints"], row["scores"], row["radius"]):
            values += [f"{x:.3f}", f"{y:.3f}", f"{score:.4f}", f"{radius:.3f}" if np.isfinite(radius) else ""]
        return values

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
            result = {
                "image_id": image_id,
                "file_name": row["file"],
                "frame": row["frame"],
                "category_id": 1,
                "keypoints": [round(float(v), 4) for v in triples.ravel()],
                "score": round(float(row["scores"].mean()), 4),
            }
            if row["box"] is not None:
                result["bbox"] = list(row["box"])
            results.append(result)
        path.write_text(json.dumps(results))
        return path


class Overlays:
    """overlays/<name>.png per image, drawn as its predictions come, and overlays/<video>.mp4 per video, drawn from
    the finished rows in a second pass over the video (so that a resumed job's video is whole, and --smooth can
    show the smoothed points); names made unique."""

    def __init__(self, out: Path, predictor: Predictor, threshold: float):
        self.folder = out / "overlays"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meta, self.threshold = predictor.meta, threshold
        self.used: set[str] = set()

    def _name(self, path: Path, suffix: str) -> Path:
        name, n = path.stem, 1
        while name in self.used:
            n += 1
            name = f"{path.stem}_{n}"
        self.used.add(name)
        return self.folder / f"{name}{suffix}"

    def _picture(self, image: np.ndarray, rows: list[dict]) -> np.ndarray:
        """The image in BGR with the keypoints of its rows (one per face; a "no face" row draws nothing)."""
        rows = [row for row in rows if row["keypoints"] is not None]
        k = len(self.meta.names)
        keypoints = np.array([row["keypoints"] for row in rows]).reshape(len(rows), k, 2)
        scores = np.array([row["scores"] for row in rows]).reshape(len(rows), k)
        radius = np.array([row["radius"] for row in rows]).reshape(len(rows), k)
        boxes = [row["box"] for row in rows]
        return cv2.cvtColor(draw(image, keypoints, scores, self.meta, self.threshold, boxes, radius), cv2.COLOR_RGB2BGR)

    def add(self, item: Item, rows: list[dict]) -> None:
        """An image's overlay PNG, from the rows the Writer made of it."""
        cv2.imwrite(str(self._name(Path(item.file), ".png")), self._picture(item.source, rows))

    def video(self, path: str, rows: list[dict], fps: float, advance=lambda: None) -> Path:
        """overlays/<video>.mp4: the video's frames that have rows, each with its rows drawn; `advance` after each."""
        by_frame: dict[int, list[dict]] = {}
        for row in rows:
            by_frame.setdefault(row["frame"], []).append(row)
        out = self._name(Path(path), ".mp4")
        writer = None
        try:
            for frame, image in read_frames(Path(path), sorted(by_frame)):
                if image is not None:
                    picture = self._picture(image, by_frame[frame])
                    if writer is None:
                        size = picture.shape[1], picture.shape[0]
                        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    writer.write(picture)
                advance()
        finally:
            if writer is not None:
                writer.release()
        return out
