"""DeepLabCut's CSV: three header rows `scorer`, `bodyparts`, `coords`; an index of one column (an image path relative
to the project, or a frame number in an analysis file) or three (DeepLabCut >= 2.2: labeled-data, video, file); then
`x, y` per body part (and `likelihood` in an analysis file, deeplabcut.analyze_videos); an empty cell is a body part
not labelled. Read by the DeepLabCut loader (kp.data.dlc), kp smooth (kp.trajectories.tracks) and kp refine's merge;
written by kp predict --format dlc and kp refine's labelling job."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kp.data.io import read_csv, where
from kp.errors import DataError

HEADER = ["scorer", "bodyparts", "coords"]
LABELS = ("x", "y")  # labelled data's coordinates; an analysis file adds likelihood


@dataclass
class Table:
    """A DeepLabCut CSV as read: its rows as they are, and where each body part's cells are."""

    path: Path
    header: list[list[str]]  # the three header rows
    rows: list[tuple[int, list[str]]]  # (line, fields) of every frame's row
    index_width: int  # 1 or 3 index columns
    columns: dict[str, dict[str, int]]  # body part -> {"x": column, "y": column[, "likelihood": column]}

    @property
    def bodyparts(self) -> list[str]:
        return list(self.columns)

    def index(self, fields: list[str]) -> str:
        return index_path(fields, self.index_width)


def read(path: str | Path, coords: Sequence[str] = LABELS) -> Table:
    """A DeepLabCut CSV whose coordinate columns are among `coords`; DataError naming the file and line otherwise."""
    return parse(Path(path), read_csv(path), coords)


def parse(path: Path, rows: list[tuple[int, list[str]]], coords: Sequence[str] = LABELS) -> Table:
    """parse the rows kp.data.io.read_csv read from `path` (see read)."""
    heads = [fields[0].strip() for _, fields in rows[:3]]
    if "individuals" in heads:
        raise DataError(f"{path}: multi-animal DeepLabCut labels (an `individuals` header row) are not supported")
    if heads != HEADER:
        raise DataError(f"{path}: expected three header rows scorer, bodyparts, coords; found {heads}")
    parts, coord_row = rows[1][1], [c.strip() for c in rows[2][1]]
    if len(parts) != len(coord_row):
        raise DataError(f"{where(path, rows[1][0])}: {len(parts)} columns, the coords row has {len(coord_row)}")
    width = index_width(coord_row)
    columns: dict[str, dict[str, int]] = {}
    for i in range(width, len(coord_row)):
        if coord_row[i] not in coords:
            raise DataError(
                f"{where(path, rows[2][0])}: column {i + 1} is {coord_row[i]!r}; expected "
                f"{', '.join(coords)} per body part"
            )
        columns.setdefault(parts[i].strip(), {})[coord_row[i]] = i
    if not columns or any(not {"x", "y"} <= set(c) for c in columns.values()):
        raise DataError(f"{path}: every body part needs an x and a y column")
    return Table(path, [fields for _, fields in rows[:3]], rows[3:], width, columns)


def index_width(coords: Sequence[str]) -> int:
    """How many index columns come before the first coordinate."""
    return next((i for i, c in enumerate(coords) if c in ("x", "y", "likelihood")), len(coords))


def index_path(fields: Sequence[str], width: int) -> str:
    """A row's index as one path: the three-column index joined, Windows' backslashes made slashes."""
    return "/".join(f for f in fields[:width] if f).replace("\\", "/")


def frame_image(frame: int) -> str:
    """The file name DeepLabCut gives a video's extracted frame."""
    return f"img{frame:05d}.png"


def bodyparts(path: str | Path) -> list[str]:
    """The body parts of a label file's header, in column order (the single-CSV layout has no config.yaml)."""
    rows = read_csv(path)
    if len(rows) < 3 or rows[1][1][:1] != ["bodyparts"]:
        raise DataError(f"{path}: expected three header rows scorer, bodyparts, coords")
    return list(dict.fromkeys(name for name in rows[1][1][1:] if name))


def write(
    path: str | Path,
    scorer: str,
    names: Sequence[str],
    rows: list[list],
    coords: Sequence[str] = LABELS,
    individuals: Sequence[str] = (),
    lineterminator: str = "\n",
) -> Path:
    """A DeepLabCut CSV with a one-column index: rows are [index, x, y, x, y, ...] (empty: not labelled), or with
    coords=("x", "y", "likelihood") an analysis file; `individuals` adds DeepLabCut's multi-animal header row, a
    column block of every body part per individual."""
    blocks = list(individuals) or [None]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator=lineterminator)
        writer.writerow(["scorer"] + [scorer] * len(coords) * len(names) * len(blocks))
        if individuals:
            writer.writerow(["individuals"] + [who for who in individuals for _ in range(len(coords) * len(names))])
        writer.writerow(["bodyparts"] + [name for _ in blocks for name in names for _ in coords])
        writer.writerow(["coords"] + list(coords) * len(names) * len(blocks))
        writer.writerows(rows)
    return Path(path)


def append(path: Path, scorer: str, names: Sequence[str], rows: list[list[str]]) -> None:
    """Append rows [index, x, y, ...] to a label file, its bytes before them kept (a three-column file gets the index
    split, its line ends are kept); a new file gets the header."""
    if not path.is_file():
        write(path, scorer, names, rows)
        return
    data = path.read_bytes()
    newline = "\r\n" if b"\r\n" in data else "\n"
    width = index_width(read_csv(path)[2][1])
    with open(path, "a", newline="") as file:
        if data and not data.endswith(b"\n"):
            file.write(newline)
        writer = csv.writer(file, lineterminator=newline)
        for row in rows:
            index = row[0].split("/", 2) if width == 3 else [row[0]]
            writer.writerow(index + row[1:])


def labels_by_index(path: Path) -> dict[str, tuple[int, list[str]]]:
    """index -> (line, its x, y cells) of a label file's rows (one or three index columns); empty if no file."""
    if not path.is_file():
        return {}
    rows = read_csv(path)
    width = index_width(rows[2][1] if len(rows) > 2 else [])
    return {index_path(fields, width): (line, fields[width:]) for line, fields in rows[3:]}
