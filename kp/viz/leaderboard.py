"""A sweep's figures (kp.train.leaderboard): the objective against each swept parameter, and the learning curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def objective(rows: pd.DataFrame, swept: list[str], objective: str, title: str, path: Path) -> Path:
    """One panel per swept parameter: the objective of each job against its value (log axis for numbers that span a
    factor of 10 or more, as learning rates do)."""
    fig = Figure(figsize=(4 * len(swept), 3.5))
    axes = fig.subplots(1, len(swept), squeeze=False)
    done = rows[rows["objective"].notna()]
    for ax, key in zip(axes.flat, swept):
        values = pd.to_numeric(done[key], errors="coerce")
        if values.notna().all() and len(values):
            ax.scatter(values, done["objective"])
            if values.min() > 0 and values.max() >= 10 * values.min():
                ax.set_xscale("log")
                # a tick at each swept value only: the log axis's own minor labels collide
                ax.xaxis.set_minor_formatter(NullFormatter())
                ticks = sorted(set(values))
                ax.set_xticks(ticks, [f"{v:g}" for v in ticks], rotation=30, ha="right")
        else:  # categories (model=unet,hourglass) in order of first appearance
            categories = list(dict.fromkeys(rows[key].astype(str)))
            ax.scatter([categories.index(v) for v in done[key].astype(str)], done["objective"])
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: {len(done)} of {len(rows)} jobs with an objective", fontsize=9)
    return _save(fig, path)


def learning_curve(curves: list, ylabel: str, title: str, path: Path) -> Path:
    """The error against the number of labelled training images, log-log, with each curve's fitted power law
    (kp.train.learning_curve.PowerLaw) extended to the size its next 10 % step would need; curves: (label, jobs with
    train_images and error, law or None)."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for label, jobs, law in curves:
        points = ax.plot(jobs["train_images"], jobs["error"], "o", label=label)[0]
        if law is not None:
            most = jobs["train_images"].max()
            reach = law.images_for(0.9 * law.error_at(most))
            n = np.geomspace(jobs["train_images"].min(), min(reach, 10 * most) if np.isfinite(reach) else most, 50)
            ax.plot(n, law.error_at(n), "--", color=points.get_color(), label=f"{law.a:.3g} · n^-{law.b:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    sizes = sorted({int(n) for _, jobs, _ in curves for n in jobs["train_images"]})
    ax.set_xticks(sizes, [str(n) for n in sizes])  # a tick at each training-set size: the decades may show none
    ax.set_xlabel("labelled training images")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: learning curve", fontsize=9)
    return _save(fig, path)
