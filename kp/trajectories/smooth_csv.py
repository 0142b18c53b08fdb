"""`kp smooth` and `kp predict --smooth` (kp/cli/smooth.py): a prediction CSV smoothed into <stem>_smoothed.csv
beside it, with a figure per keypoint (kp.viz.trajectory) and a report, and the report printed as a table. A file
whose every score lies below the threshold is refused in one line, never smoothed into empty tracks.

The radius's alpha (what the Kalman filter turns the radius into a standard deviation with) comes from --alpha, else
from the sidecar kp predict writes beside its CSV (<stem>.json: the calibration's alpha), else 0.1, kp's default.
An ensemble's CSV (<keypoint>_ens_var columns) is smoothed with its spread as the noise (kp.trajectories.smooth); the
title of the table and report says which noise was used, with the ensemble's number of members from the sidecar."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from kp import markdown
from kp.defaults import MISS_RATE, SCORE_THRESHOLD
from kp.errors import ConfigError, InputError
from kp.formats.predictions_csv import sidecar
from kp.trajectories.smooth import smooth
from kp.trajectories.tracks import Tracks, read_tracks, write_tracks
from kp.viz.trajectory import plot_track


@dataclass
class Smoothed:
    csv: Path  # the smoothed CSV
    report: Path  # report.md
    figures: list[Path]
    rows: list[dict]  # per track and keypoint: Report's fields and within_radius
    noise: str | None  # kalman: which measurement noise it used, in words


def smooth_file(
    path: str | Path,
    method: str = "kalman",
    out: str | Path | None = None,
    window: int | None = None,
    threshold: float = SCORE_THRESHOLD,
    alpha: float | None = None,
    console: Console | None = None,
) -> Smoothed:
    """Smooth the CSV at `path` (kp predict or DeepLabCut) and write <stem>_smoothed.csv and, in <stem>_smoothing/, a
    figure per keypoint and report.md (+ report.csv) into `out` (default: the CSV's folder)."""
    console = console or Console(stderr=True)
    path = Path(path)
    raw = read_tracks(path)  # DataError naming the file: missing, unreadable, another format
    _check_confident(path, raw, threshold)
    meta = _read_sidecar(path)
    alpha, alpha_source = _alpha(path, alpha, meta)
    noise = _noise(raw, meta.get("members")) if method == "kalman" else None
    options = {"threshold": threshold}
    if method == "kalman":
        options["alpha"] = alpha
    if window is not None:
        options["window"] = window
    try:
        smoothed, reports = smooth(raw, method, **options)
    except ValueError as error:
        raise ConfigError(f"kp smooth --method {method}: {error}") from None
    out = Path(out) if out else path.parent
    folder = out / f"{path.stem}_smoothing"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = write_tracks(smoothed, out / f"{path.stem}_smoothed.csv")
    tracks = [name for name, _ in raw.track_rows()]
    pairs = [(name, keypoint) for name in tracks for keypoint in raw.names]
    figures = []
    for name, keypoint in track(pairs, description="drawing", console=console, transient=True, disable=len(pairs) < 5):
        prefix = f"{_file_name(name)}_" if len(tracks) > 1 else ""
        figure = folder / f"{prefix}{_file_name(keypoint)}.png"
        figures.append(plot_track(raw, smoothed, keypoint, figure, threshold, name))
    within = _within_radius(raw, smoothed, threshold)
    rows = [{**vars(report), "within_radius": within[(report.track, report.keypoint)]} for report in reports]
    title = f"kp smooth: {method} ({', '.join(f'{k}={v}' for k, v in options.items())}; alpha from {alpha_source}"
    title += f"; noise: {noise})" if noise else ")"
    report_path = _write_report(folder, path, csv_path, title, rows, figures)
    console.print(_table(title, rows))
    console.print(f"written: {csv_path}, {report_path}, {len(figures)} figure(s) in {folder}/")
    return Smoothed(csv_path, report_path, figures, rows, noise)


def _check_confident(path: Path, tracks: Tracks, threshold: float) -> None:
    """Smoothing counts points scored below the threshold as missing: where all are, it would write empty tracks."""
    if tracks.confident(threshold).any():
        return
    scores = tracks.score[np.isfinite(tracks.xy).all(axis=-1) & np.isfinite(tracks.score)]
    if not len(scores):
        raise InputError(f"{path}: no keypoint has a position and a score: nothing to smooth")
    raise InputError(
        f"{path}: every score is below --threshold {threshold:g} (the highest is {scores.max():.3f}): nothing to "
        f"smooth; lower --threshold below {scores.max():.3f}, or predict with a better model"
    )


def _read_sidecar(path: Path) -> dict:
    """kp predict's <stem>.json beside the CSV ({} where there is none): alpha, flip, and an ensemble's members."""
    meta = sidecar(path)
    if not meta.is_file():
        return {}
    try:
        found = json.loads(meta.read_text())
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, dict):
        raise ConfigError(f"{meta}: not the JSON kp predict writes; remove it or give --alpha")
    return found


def _alpha(path: Path, alpha: float | None, meta: dict) -> tuple[float, str]:
    if alpha is not None:
        return alpha, "--alpha"
    if meta.get("alpha") is not None:
        return float(meta["alpha"]), sidecar(path).name
    missing = f"no alpha in {sidecar(path).name}" if meta else f"no {sidecar(path).name}"
    return MISS_RATE, f"the default {MISS_RATE} ({missing}, no --alpha)"


def _noise(tracks: Tracks, members: int | None) -> str:
    """The Kalman smoother's measurement noise in words (kp.trajectories.smooth.kalman's choice)."""
    calibrated = np.isfinite(tracks.radius).any(axis=0)
    if tracks.ens_var is not None:
        spread = f"ensemble variance of {members} members" if members else "ensemble variance (_ens_var columns)"
        return spread + (" + calibrated radius" if calibrated.any() else "")
    if calibrated.all():
        return "calibrated radius"
    return "calibrated radius, else score" if calibrated.any() else "score (sigma0 fitted)"


def _within_radius(raw: Tracks, smoothed: Tracks, threshold: float) -> dict[tuple[str, str], float]:
    """Per track and keypoint: the share of confident raw frames with a radius whose smoothed point lies within it."""
    distance = np.linalg.norm(smoothed.xy - raw.xy, axis=-1)
    usable = np.isfinite(distance) & np.isfinite(raw.radius) & (np.nan_to_num(raw.score, nan=-1) >= threshold)
    shares = {}
    for name, rows in raw.track_rows():
        for k, keypoint in enumerate(raw.names):
            ok = usable[rows, k]
            shares[(name, keypoint)] = (
                float((distance[rows, k][ok] <= raw.radius[rows, k][ok]).mean()) if ok.any() else math.nan
            )
    return shares


COLUMNS = {
    "track": "track",
    "keypoint": "keypoint",
    "frames": "frames",
    "filled": "filled",
    "jump_before": "mean jump raw (px)",
    "jump_after": "mean jump smoothed (px)",
    "within_radius": "within raw radius",
}


def _cell(key: str, value) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.1%}" if key == "within_radius" else f"{value:.2f}"
    return str(value)


def _table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title)
    for key, label in COLUMNS.items():
        name = key in ("track", "keypoint")  # a name too long for the terminal folds onto the next line, whole
        table.add_column(label, justify="left" if name else "right", overflow="fold" if name else "ellipsis")
    for row in rows:
        table.add_row(*(_cell(key, row[key]) for key in COLUMNS))
    return table


def _write_report(folder: Path, raw: Path, csv_path: Path, title: str, rows: list[dict], figures: list[Path]) -> Path:
    header = list(COLUMNS) + ["process_noise"]
    with open(folder / "report.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([_csv(row[key]) for key in header] for row in rows)
    page = [f"# {title}", "", f"{raw} -> {csv_path}", ""]
    page += markdown.table(COLUMNS.values(), [[_cell(key, row[key]) for key in COLUMNS] for row in rows]).splitlines()
    page += [
        "",
        "filled: frames below the score threshold or without a prediction that got a position (between the first "
        "and the last confident frame); mean jump: the mean distance between consecutive frames (raw: confident "
        "ones only); within raw radius: the share of confident raw frames whose smoothed point lies within the "
        "raw point's calibrated radius.",
        "",
    ]
    page += [f"![{figure.stem}]({figure.name})" for figure in figures]
    path = folder / "report.md"
    path.write_text("\n".join(page) + "\n")
    return path


def _csv(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(text).name or text) or "track"
