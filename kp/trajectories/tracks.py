"""Keypoint tracks read from a prediction CSV, and written back in the same layout.

Two layouts read:
  - `kp predict`'s predictions.csv: a header `file, frame, [face, box_x, box_y, box_w, box_h], status`, then
    `<keypoint>_x, <keypoint>_y, <keypoint>_score[, <keypoint>_radius]` per keypoint; empty cells are missing. An
    ensemble's (kp predict RUN1 RUN2 ...) also has `<keypoint>_ens_var`, the members' spread (px²): where a keypoint
    has a position it must have its spread (a DataError naming the row otherwise).
  - DeepLabCut's CSVs: three header rows `scorer`, `bodyparts`, `coords`; an index of one or more columns, then
    `x, y[, likelihood]` per body part. An analysis file (deeplabcut.analyze_videos) has the likelihood, which becomes
    the score; labelled data (CollectedData_*.csv) has none: score 1 where labelled, missing where the cell is empty.

Rows belong to tracks: a video's frames (per face with --detect faces), or the still images of one folder (frames
extracted from a video), in the order of the number at the end of their names. Smoothing never crosses tracks.
The file's rows are kept as read, so that writing changes only the keypoint cells and leaves every other column
(file, status, box, score, ens_var, the index) exactly as it was.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kp.data.io import parse_number, read_csv, where
from kp.errors import DataError
from kp.formats import dlc_csv, predictions_csv

EXPECTED = (
    "a kp predict CSV (header file, frame, ..., <keypoint>_x, <keypoint>_y, <keypoint>_score) or a DeepLabCut "
    "CSV (header rows scorer, bodyparts, coords)"
)


@dataclass
class Layout:
    """Where the keypoint cells are in the file's rows; None where a keypoint has no such column."""

    format: str  # "kp" or "dlc"
    header: list[list[str]]  # the header row(s), as read
    cells: list[list[str]]  # the data rows, as read
    x: list[int]
    y: list[int]
    score: list[int | None]
    radius: list[int | None]
    newline: str = "\n"
    ens_var: list[int] | None = None  # an ensemble's spread columns


@dataclass
class Tracks:
    frames: np.ndarray  # N int: a row's time within its track (video frame, or the number in an image's name)
    names: list[str]  # K keypoint names
    xy: np.ndarray  # N×K×2 float pixels, NaN = missing
    score: np.ndarray  # N×K, NaN = missing
    radius: np.ndarray  # N×K, the calibrated (1 - alpha) radius in pixels, NaN = none
    groups: np.ndarray  # N str: the track each row belongs to
    layout: Layout = field(repr=False)  # the file's own rows, to write back
    ens_var: np.ndarray | None = None  # N×K an ensemble's spread (variance of x + variance of y), px²; None: one model

    def confident(self, threshold: float) -> np.ndarray:
        """N×K: which points have a position and a score at or above the threshold."""
        return np.isfinite(self.xy).all(axis=-1) & (np.nan_to_num(self.score, nan=-1.0) >= threshold)

    def track_rows(self) -> list[tuple[str, np.ndarray]]:
        """(track, its row indices in time order) for every track, in order of first appearance."""
        _, first, inverse = np.unique(self.groups.astype(str), return_index=True, return_inverse=True)
        order = np.lexsort((self.frames, inverse))  # by track, then by time (stable)
        chunks = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
        chunks.sort(key=lambda rows: first[inverse[rows[0]]])
        return [(self.groups[rows[0]], rows) for rows in chunks]


def read_tracks(path: str | Path) -> Tracks:
    """A kp predict or DeepLabCut CSV as tracks; DataError (a ValueError) naming the file for anything else."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5", ".pickle"):
        raise DataError(
            f"{path}: a {path.suffix} file; expected {EXPECTED} (DeepLabCut writes CSV with save_as_csv=True)"
        )
    rows = read_csv(path)  # DataError for a missing or unreadable file
    if not rows:
        raise DataError(f"{path}: empty; expected {EXPECTED}")
    with open(path, "rb") as file:
        newline = "\r\n" if file.readline().endswith(b"\r\n") else "\n"
    header = [name.strip() for name in rows[0][1]]
    if header[0] == "scorer":
        tracks = _read_dlc(path, rows)
    elif predictions_csv.is_predictions(header):
        tracks = _read_kp(path, rows)
    else:
        raise DataError(f"{path}: {_what_it_is(rows)}: not a layout kp smooth reads; expected {EXPECTED}")
    tracks.layout.newline = newline
    return tracks


def _what_it_is(rows: list[tuple[int, list[str]]]) -> str:
    """A CSV in a few words: its size and its first row, shortened."""
    first = ", ".join(rows[0][1])
    first = first if len(first) <= 60 else first[:57] + "..."
    return f"a CSV of {len(rows)} row(s) and {len(rows[0][1])} column(s) whose first row is {first!r}"


def write_tracks(tracks: Tracks, path: str | Path, like: str | Path | None = None) -> Path:
    """Write `tracks` in the layout of the file they came from (or of `like`, a file with the same rows and
    keypoints): its header and every other cell as they were, the keypoint x, y (and radius, where the file has the
    column) replaced. Scores are left as read: a filled frame keeps its low score, so it stays recognisable."""
    layout = read_tracks(like).layout if like is not None else tracks.layout
    if len(layout.cells) != len(tracks.frames) or len(layout.x) != len(tracks.names):
        raise DataError(
            f"{like}: {len(layout.cells)} rows × {len(layout.x)} keypoints; the tracks have "
            f"{len(tracks.frames)} × {len(tracks.names)}"
        )
    out = [list(row) for row in layout.cells]
    for row, xy, radius in zip(out, tracks.xy, tracks.radius):
        for k in range(len(tracks.names)):
            row[layout.x[k]], row[layout.y[k]] = _number(xy[k, 0]), _number(xy[k, 1])
            if layout.radius[k] is not None:
                row[layout.radius[k]] = _number(radius[k])
    path = Path(path)
    with open(path, "w", newline="") as file:
        csv.writer(file, lineterminator=layout.newline).writerows(layout.header + out)
    return path


def _number(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else ""


def _read_kp(path: Path, rows: list[tuple[int, list[str]]]) -> Tracks:
    header = [name.strip() for name in rows[0][1]]
    column = {name: i for i, name in enumerate(header)}
    names = predictions_csv.keypoint_names(header)
    if not names:
        raise DataError(f"{path}: no <keypoint>_x, <keypoint>_y, <keypoint>_score columns; expected {EXPECTED}")
    layout = Layout(
        "kp",
        [rows[0][1]],
        [fields for _, fields in rows[1:]],
        x=[column[f"{n}_x"] for n in names],
        y=[column[f"{n}_y"] for n in names],
        score=[column[f"{n}_score"] for n in names],
        radius=[column.get(f"{n}_radius") for n in names],
        ens_var=[column[f"{n}_{predictions_csv.SPREAD}"] for n in names] if _ensemble(path, names, column) else None,
    )
    keys, times = [], []
    for line, fields in rows[1:]:
        _check_width(path, line, fields, len(header))
        file, frame = fields[column["file"]], fields[column["frame"]].strip()
        face = f"#face{fields[column['face']].strip()}" if "face" in column else ""
        # A video's frames are one track (per face); still images are tracks per folder.
        if frame:
            keys.append(file + face)
            times.append(int(parse_number(frame, where(path, line), "frame")))
        else:
            keys.append(str(Path(file).parent) + "/" + face)
            times.append(None)
    stills = [fields[column["file"]] for _, fields in rows[1:]]
    return _tracks(path, rows[1:], names, layout, keys, _fill_times(keys, times, stills))


def _ensemble(path: Path, names: list[str], column: dict[str, int]) -> bool:
    """Whether the header is an ensemble's: every keypoint has its spread column, or none does."""
    spread = [n for n in names if f"{n}_{predictions_csv.SPREAD}" in column]
    if spread and len(spread) < len(names):
        missing = next(n for n in names if n not in spread)
        raise DataError(
            f"{path}: has {spread[0]}_{predictions_csv.SPREAD} but no {missing}_{predictions_csv.SPREAD} column: an "
            "ensemble's CSV has a spread column per keypoint (kp predict RUN1 RUN2 ... writes them all)"
        )
    return bool(spread)


def _read_dlc(path: Path, rows: list[tuple[int, list[str]]]) -> Tracks:
    table = dlc_csv.parse(path, rows, coords=("x", "y", "likelihood"))
    names = table.bodyparts
    layout = Layout(
        "dlc",
        table.header,
        [fields for _, fields in table.rows],
        x=[table.columns[n]["x"] for n in names],
        y=[table.columns[n]["y"] for n in names],
        score=[table.columns[n].get("likelihood") for n in names],
        radius=[None] * len(names),
    )
    width = len(table.header[2])
    keys, times, index = [], [], []
    for line, fields in table.rows:
        _check_width(path, line, fields, width)
        name = table.index(fields)
        index.append(name)
        # An analysis file's index is the frame number (one video); labelled data's is an image path.
        if name.isdigit():
            keys.append("")
            times.append(int(name))
        else:
            keys.append(str(Path(name).parent) + "/")
            times.append(None)
    return _tracks(path, table.rows, names, layout, keys, _fill_times(keys, times, index))


def _check_width(path: Path, line: int, fields: list[str], width: int) -> None:
    if len(fields) != width:
        raise DataError(f"{where(path, line)}: {len(fields)} columns, the header has {width}")


def _fill_times(keys: list[str], times: list[int | None], names: list[str]) -> list[int]:
    """Times for still images: the number at the end of each name where every image of the folder has a distinct one
    (img0012.png), else the rank of the name."""
    times, folders = list(times), {}
    for i, (key, time) in enumerate(zip(keys, times)):
        if time is None:
            folders.setdefault(key, []).append(i)
    for rows in folders.values():
        numbers = [re.search(r"(\d+)\D*$", Path(names[i]).name) for i in rows]
        if all(numbers) and len({int(m.group(1)) for m in numbers}) == len(rows):
            for i, m in zip(rows, numbers):
                times[i] = int(m.group(1))
        else:
            for rank, i in enumerate(sorted(rows, key=lambda i: names[i])):
                times[i] = rank
    return times


def _tracks(
    path: Path, rows: list[tuple[int, list[str]]], names: list[str], layout: Layout, keys: list[str], times: list[int]
) -> Tracks:
    if not rows:
        raise DataError(f"{path}: a header but no rows")
    n, k = len(rows), len(names)
    xy, score, radius = np.full((n, k, 2), np.nan), np.full((n, k), np.nan), np.full((n, k), np.nan)
    ens_var = None if layout.ens_var is None else np.full((n, k), np.nan)
    for i, (line, fields) in enumerate(rows):
        at = where(path, line)
        for j, name in enumerate(names):
            x, y = fields[layout.x[j]].strip(), fields[layout.y[j]].strip()
            if x and y:  # else missing (not labelled, not predicted)
                xy[i, j] = parse_number(x, at, f"{name} x"), parse_number(y, at, f"{name} y")
            # Labelled data has no score: 1 where labelled.
            cell = fields[layout.score[j]].strip() if layout.score[j] is not None else "1" if x and y else ""
            score[i, j] = parse_number(cell, at, f"{name} score") if cell else np.nan
            cell = fields[layout.radius[j]].strip() if layout.radius[j] is not None else ""
            radius[i, j] = parse_number(cell, at, f"{name} radius") if cell else np.nan
            if ens_var is not None:
                ens_var[i, j] = _spread(fields[layout.ens_var[j]].strip(), at, name, bool(x and y))
    return Tracks(
        np.array(times, dtype=np.int64), names, xy, score, radius, np.array(keys, dtype=object), layout, ens_var
    )


def _spread(cell: str, at: str, name: str, placed: bool) -> float:
    """A keypoint's ensemble spread (NaN where empty): the smoother's noise, so it is refused negative, and missing
    where the keypoint has a position (placed)."""
    column = f"{name}_{predictions_csv.SPREAD}"
    if not cell:
        if placed:
            raise DataError(
                f"{at}: {name} has a position but no {column}: fill it (the members' variance, px²) or smooth "
                f"a CSV without the {predictions_csv.SPREAD} columns"
            )
        return np.nan
    value = parse_number(cell, at, column)
    if value < 0:
        raise DataError(f"{at}: {column} {cell} is negative: a variance is 0 or more")
    return value
