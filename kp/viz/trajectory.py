"""One keypoint's track over time, raw against smoothed (kp smooth's figures, kp/trajectories/smooth_csv.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: the Agg canvas of savefig, no global backend state

from kp.defaults import SCORE_THRESHOLD
from kp.trajectories.tracks import Tracks


def plot_track(
    tracks_raw: Tracks,
    tracks_smooth: Tracks,
    keypoint: str | int,
    path: str | Path,
    threshold: float = SCORE_THRESHOLD,
    track: str | None = None,
) -> Path:
    """x and y of one keypoint over time: raw faint, smoothed bold, frames below the score threshold marked in red
    (crosses at their raw position, ticks along the bottom). `track`: which track (default the first)."""
    names = tracks_raw.names
    if keypoint not in names and not (isinstance(keypoint, int) and 0 <= keypoint < len(names)):
        raise ValueError(f"no keypoint {keypoint!r}: the tracks have {', '.join(names)}")
    k = names.index(keypoint) if keypoint in names else keypoint
    found = dict(tracks_raw.track_rows())
    if track is not None and track not in found:
        raise ValueError(f"no track {track!r}: the tracks are {', '.join(found)}")
    track = next(iter(found)) if track is None else track
    rows = found[track]
    t, low = tracks_raw.frames[rows], ~tracks_raw.confident(threshold)[rows, k]
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    for c, axis in enumerate(axes):
        axis.plot(t, tracks_raw.xy[rows, k, c], color="0.5", lw=0.8, alpha=0.5, label="raw")
        axis.plot(t, tracks_smooth.xy[rows, k, c], color="C0", lw=2, label="smoothed")
        axis.plot(t[low], tracks_raw.xy[rows, k, c][low], "x", color="C3", ms=4, label=f"score < {threshold}")
        axis.plot(t[low], np.zeros(low.sum()), "|", color="C3", ms=8, transform=axis.get_xaxis_transform())
        axis.set_ylabel(f"{'xy'[c]} (px)")
    axes[0].set_title(f"{names[k]}" + (f"  ({track})" if track else ""))
    axes[0].legend(loc="best", fontsize="small")
    axes[1].set_xlabel("frame")
    figure.savefig(path, dpi=120)
    return Path(path)
