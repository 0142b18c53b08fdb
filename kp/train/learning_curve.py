"""How many labels do I need? The learning curve of a sweep over data.train_fraction: the error against the number of
labelled training images, a fitted power law error = a · n^(-b) (a straight line on log-log axes, as error curves
of deep models are over a decade or two of data), and from it the number of images that a 10 % lower error would
need. The leaderboard draws it (learning_curve.png) and states it (leaderboard.md) when a sweep varies
data.train_fraction.

The error is the sweep's objective (best validation value of optimized_metric) where it is minimised (NME, RMSE);
for a maximised metric (PCK) it is the shortfall 1 - value."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class PowerLaw:
    a: float
    b: float  # the exponent: error falls by the factor 2^-b when the labelled images double

    @classmethod
    def fit(cls, images: list[float], errors: list[float]) -> PowerLaw | None:
        """Least squares on log-log axes; None with fewer than two distinct sizes or a non-positive error."""
        n, e = np.asarray(images, float), np.asarray(errors, float)
        if len(set(n)) < 2 or (e <= 0).any() or (n <= 0).any():
            return None
        slope, intercept = np.polyfit(np.log(n), np.log(e), 1)
        return cls(a=math.exp(intercept), b=-slope)

    def error_at(self, images: float) -> float:
        return self.a * images**-self.b

    def images_for(self, error: float) -> float:
        """The number of labelled images the fitted law needs for `error`; inf where more data does not lower it."""
        return (error / self.a) ** (-1 / self.b) if self.b > 0 else math.inf


def error_of(objective: float, mode: str) -> float:
    return objective if mode == "min" else 1 - objective


def summary(law: PowerLaw | None, images: list[float], label: str, gain: float = 0.1) -> str:
    """One sentence: the fitted law and what the next step (`gain` lower error than at the most images) would need."""
    if law is None:
        return f"{label}: no power law (needs at least two training-set sizes and errors above 0)"
    most = max(images)
    now = law.error_at(most)
    need = law.images_for((1 - gain) * now)
    tail = (
        f"{gain:.0%} lower than at {most:.0f} images ({now:.4g} -> {(1 - gain) * now:.4g}) needs about "
        f"{need:.0f} labelled images ({need / most:.1f}x)"
        if math.isfinite(need)
        else "more labelled images did not lower the error in this range"
    )
    return f"{label}: error ≈ {law.a:.4g} · n^-{law.b:.3f}; {tail}"
