"""kp predict's predictions.csv: a header `file, frame, [face, box_x, box_y, box_w, box_h], status`, then
`<keypoint>_x, <keypoint>_y, <keypoint>_score, <keypoint>_radius` per keypoint; one row per image, video frame or
face; empty cells are missing (a frame's `frame` is its number, an image's is empty). With an ensemble (kp predict
RUN1 RUN2 ...), then `<keypoint>_ens_var` per keypoint: the members' variance of x plus that of y, px². Beside it:
skipped.csv (`file, frame, reason` of every unreadable image or frame) and <stem>.json (the calibration's alpha: what
the radius means; with an ensemble, its number of members). Written by kp predict (kp.predict.writers), read back
by its --resume and by kp smooth (kp.trajectories.tracks)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kp.errors import InputError

FIELDS = ("x", "y", "score", "radius")  # per keypoint
FACE_COLUMNS = ["face", "box_x", "box_y", "box_w", "box_h"]  # with kp predict --detect faces
SPREAD = "ens_var"  # per keypoint, with an ensemble


def columns(names: Sequence[str], faces: bool, ensemble: bool = False) -> list[str]:
    """predictions.csv's header."""
    header = ["file", "frame"] + (FACE_COLUMNS if faces else []) + ["status"]
    spread = [f"{name}_{SPREAD}" for name in names] if ensemble else []
    return header + [f"{name}_{column}" for name in names for column in FIELDS] + spread


def is_predictions(header: Sequence[str]) -> bool:
    """Whether a CSV's first row looks like predictions.csv's header."""
    return "file" in header and "frame" in header and any(c.endswith("_x") for c in header)


def keypoint_names(header: Sequence[str]) -> list[str]:
    """The keypoints of a header: those with x, y and score columns (box_x, box_y of --detect faces have no score)."""
    present = set(header)
    return [n[:-2] for n in header if n.endswith("_x") and {n[:-2] + "_y", n[:-2] + "_score"} <= present]


def values(row: dict, names: Sequence[str], faces: bool, ensemble: bool = False) -> list:
    """One row's cells: file, frame, (face and box), status, then x, y, score, radius per keypoint (3, 3, 4 and 3
    decimals; empty where there is none), and with an ensemble the row's "spread" per keypoint (3 decimals)."""
    cells = [row["file"], "" if row["frame"] is None else row["frame"]]
    if faces:
        cells += ["" if row["face"] is None else row["face"], *(row["box"] or [""] * 4)]
    cells.append(row["status"])
    if row["keypoints"] is None:
        return cells + [""] * ((len(FIELDS) + ensemble) * len(names))
    for (x, y), score, radius in zip(row["keypoints"], row["scores"], row["radius"]):
        cells += [f"{x:.3f}", f"{y:.3f}", f"{score:.4f}", _number(radius)]
    return cells + [_number(spread) for spread in row["spread"]] if ensemble else cells


def _number(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else ""


def read_rows(path: Path, names: Sequence[str], faces: bool, ensemble: bool = False) -> list[dict]:
    """predictions.csv's complete rows (file, frame, face, box, status, keypoints K×2, scores K, radius K, and spread
    K with an ensemble; None where the row has no prediction); InputError when its columns are not those of this
    model or ensemble (and --detect), so that a job is never resumed into another model's file. A last line cut short
    (a killed job) ends the rows."""
    with open(path, newline="") as file:
        lines = list(csv.reader(file))
    header = lines[0] if lines else []
    if header != columns(names, faces, ensemble):
        what = f"{len(names)} keypoints{', faces' if faces else ''}{', an ensemble' if ensemble else ''}"
        raise InputError(
            f"{path}: its columns are not this model's ({what}): "
            f"resume with the model and options that wrote it, or write to another --out"
        )
    rows = []
    for cells_in_order in lines[1:]:
        if len(cells_in_order) != len(header):
            break
        cells = dict(zip(header, cells_in_order))
        points = np.array([[cells[f"{n}_{c}"] or "nan" for c in FIELDS] for n in names])
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
        if ensemble:
            rows[-1]["spread"] = np.array([cells[f"{n}_{SPREAD}"] or "nan" for n in names], float) if ok else None
    return rows


def write_skipped(path: Path, skipped: list[tuple[str, int | None, str]]) -> None:
    """skipped.csv: file, frame (empty for an image), reason."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "frame", "reason"])
        writer.writerows([file_, "" if frame is None else frame, reason] for file_, frame, reason in skipped)


def read_skipped(path: Path) -> list[tuple[str, int | None, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [
            (file_, int(frame) if frame else None, reason)
            for file_, frame, reason in [cells for cells in list(csv.reader(file))[1:] if len(cells) == 3]
        ]


def sidecar(path: Path) -> Path:
    """Where kp predict says what its CSV's radius means: <stem>.json beside it."""
    return path.with_suffix(".json")
