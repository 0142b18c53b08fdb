"""What kp predict writes: predictions.csv (and the DeepLabCut and COCO formats), and the overlay pictures and
videos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from kp.inference.predictor import Predictor
from kp.predict.overlay import draw
from kp.predict.sources import Item

FORMATS = ("dlc", "coco")


class Writer:
    """Collects prediction rows and writes predictions.csv and the other formats at the end."""

    def __init__(self, out: Path, names: list[str], faces: bool):
        self.out, self.names, self.faces = out, names, faces
        self.rows: list[dict] = []
        self.skipped: list[tuple[str, int | None, str]] = []

    def add(self, item: Item, keypoints: np.ndarray, scores: np.ndarray, radius: np.ndarray) -> None:
        if self.faces and not item.tensors:
            self.rows.append(
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
            self.rows.append(
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
                        values += [
                            f"{x:.3f}",
                            f"{y:.3f}",
                            f"{score:.4f}",
                            f"{radius:.3f}" if np.isfinite(radius) else "",
                        ]
                writer.writerow(values)
        if self.skipped:
            with open(self.out / "skipped.csv", "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(["file", "frame", "reason"])
                writer.writerows(
                    [file_, "" if frame is None else frame, reason] for file_, frame, reason in self.skipped
                )
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

    def add(
        self, item: Item, keypoints: np.ndarray, scores: np.ndarray, radius: np.ndarray, fps: float | None = None
    ) -> None:
        picture = draw(item.source, keypoints, scores, self.meta, self.threshold, item.boxes, radius)
        bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        if item.frame is None:
            cv2.imwrite(str(self._name(Path(item.file), ".png")), bgr)
            return
        if item.file not in self.videos:
            height, width = bgr.shape[:2]
            self.videos[item.file] = cv2.VideoWriter(
                str(self._name(Path(item.file), ".mp4")), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
            )
        self.videos[item.file].write(bgr)

    def close(self) -> None:
        for video in self.videos.values():
            video.release()
