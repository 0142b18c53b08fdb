"""What kp predict writes: predictions.csv (and the DeepLabCut and COCO formats), and the overlay pictures and
videos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from kp.data.video import read_frames
from kp.formats import dlc_csv, predictions_csv
from kp.inference.predictor import Predictor
from kp.inference.sources import Item
from kp.predict import pose_files
from kp.viz.overlay import draw

FORMATS = ("dlc", "coco", *pose_files.FORMATS)


def _key(row: dict) -> tuple[str, int | None]:
    return row["file"], row["frame"]


class Writer:
    """Appends prediction rows to predictions.csv as they come (flushed after every batch, so that a killed job
    leaves a CSV valid up to its last complete row) and writes the other formats at the end. With resume, the rows
    already in the file are kept, the last image or frame's rows redone (it may be cut short) and `done` names them,
    so that the job goes on where it stopped. ensemble: rows carry the members' spread, written as its columns."""

    def __init__(self, out: Path, names: list[str], faces: bool, resume: bool = False, ensemble: bool = False):
        self.out, self.names, self.faces, self.ensemble = out, names, faces, ensemble
        self.path = out / "predictions.csv"
        self.header = predictions_csv.columns(names, faces, ensemble)
        self.rows: list[dict] = []
        self.skipped: list[tuple[str, int | None, str]] = []
        if resume and self.path.is_file():
            self.rows = predictions_csv.read_rows(self.path, names, faces, ensemble)
            last = _key(self.rows[-1]) if self.rows else None
            self.rows = [row for row in self.rows if _key(row) != last]
            self.skipped = predictions_csv.read_skipped(out / "skipped.csv")
        self.done = {_key(row) for row in self.rows} | {(file, frame) for file, frame, _ in self.skipped}
        self.file = open(self.path, "w", newline="")  # the kept rows written again: a cut-short last line goes
        self.csv = csv.writer(self.file)
        self.csv.writerow(self.header)
        self.csv.writerows(predictions_csv.values(row, names, faces, ensemble) for row in self.rows)
        self.flush()

    def add(
        self, item: Item, keypoints: np.ndarray, scores: np.ndarray, radius: np.ndarray, spread: np.ndarray | None
    ) -> None:
        """An item's rows (one per face); spread: the ensemble's B×K spread, None for one model."""
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
                    **({"spread": None} if self.ensemble else {}),
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
                    **({"spread": spread[face]} if self.ensemble else {}),
                }
            )
        self.rows += added
        self.csv.writerows(predictions_csv.values(row, self.names, self.faces, self.ensemble) for row in added)

    def skip(self, item: Item) -> None:
        self.skipped.append((item.file, item.frame, item.error))

    def flush(self) -> None:
        """Everything added so far into the files (after each batch)."""
        self.file.flush()
        if self.skipped:
            predictions_csv.write_skipped(self.out / "skipped.csv", self.skipped)

    def close(self) -> Path:
        self.flush()
        self.file.close()
        return self.path

    def _row_name(self, row: dict) -> str:
        """A DeepLabCut-style image path: the file, or <video>/img<frame>.png for a frame; #face<i> after the first."""
        name = row["file"] if row["frame"] is None else f"{Path(row['file']).stem}/{dlc_csv.frame_image(row['frame'])}"
        return name if not row["face"] else f"{name}#face{row['face']}"

    def write_dlc(self, threshold: float) -> Path:
        rows = []
        for row in self.rows:
            if row["keypoints"] is not None:
                cells = [self._row_name(row)]
                for (x, y), score in zip(row["keypoints"], row["scores"]):
                    cells += [f"{x:.3f}", f"{y:.3f}"] if score >= threshold else ["", ""]
                rows.append(cells)
        # The csv module's own line ends (\r\n), as kp predict has always written this file.
        return dlc_csv.write(self.out / "CollectedData_kp.csv", "kp", self.names, rows, lineterminator="\r\n")

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
