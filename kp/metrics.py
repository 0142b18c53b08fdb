"""Keypoint metrics as torchmetrics (so they sync across DDP processes), each overall and per keypoint.

All take decoded keypoints in input pixels. Only visible ground-truth keypoints count.
  KeypointRMSE  root mean squared error per coordinate, in pixels (the Kaggle facial-keypoints metric)
  NME           mean of |error| / normalisation length of the sample
  PCK           fraction of keypoints with |error| <= threshold × normalisation length of the sample
The normalisation length is per sample (B); a NaN length (e.g. a normalising pair that is not labelled) excludes that
sample from NME/PCK.
  nme_count     NME + count MAE / count_scale: the checkpoint metric of a model that also counts (nme_plus_count)
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class _PerKeypointMean(Metric):
    """Accumulates a per-keypoint sum and count; compute() -> {"overall": mean, "per_keypoint": K means}."""

    full_state_update = False

    def __init__(self, num_keypoints: int, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros(num_keypoints, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(num_keypoints, dtype=torch.float64), dist_reduce_fx="sum")

    def values(self, error: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """B×K per-keypoint value from the B×K pixel error distances and B normalisation lengths."""
        raise NotImplementedError

    def update(self, pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor, norm: torch.Tensor) -> None:
        error = (pred.float() - target.float()).norm(dim=-1)  # B×K
        mask = visible & torch.isfinite(norm)[:, None]
        values = self.values(error, norm[:, None])
        self.total += torch.where(mask, values, torch.zeros_like(values)).sum(0).double()
        self.count += mask.sum(0).double()

    def finish(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def compute(self) -> dict[str, torch.Tensor]:
        overall = self.total.sum() / self.count.sum()  # NaN when nothing was counted, not a misleading 0
        return {"overall": self.finish(overall).float(), "per_keypoint": self.finish(self.total / self.count).float()}


class KeypointRMSE(_PerKeypointMean):
    def values(self, error, norm):
        return error**2 / 2  # squared error per coordinate: (dx² + dy²) / 2

    def finish(self, mean):
        return mean.sqrt()


class NME(_PerKeypointMean):
    def values(self, error, norm):
        return error / norm


class PCK(_PerKeypointMean):
    def __init__(self, num_keypoints: int, threshold: float, **kwargs):
        super().__init__(num_keypoints, **kwargs)
        self.threshold = threshold

    def values(self, error, norm):
        return (error <= self.threshold * norm).float()


def pair_distance(keypoints: torch.Tensor, visible: torch.Tensor, pair: tuple[int, int]) -> torch.Tensor:
    """Per-sample distance between the two keypoints of `pair`; NaN where either is not visible."""
    i, j = pair
    distance = (keypoints[:, i] - keypoints[:, j]).norm(dim=-1)
    return torch.where(visible[:, i] & visible[:, j], distance, torch.full_like(distance, float("nan")))


def nme_plus_count(nme: torch.Tensor, count_mae: torch.Tensor, count_scale: float) -> torch.Tensor:
    """`<split>/nme_count`, the figure that picks a counting model's checkpoint (the cards preset's optimized_metric):
    the corners' NME plus the count's mean absolute error as a fraction of count_scale (the 52-card pack), both
    fractions, lower is better. One card (1/52 = 0.019) weighs as much as a mean corner error of 1.9 % of the NME's
    length (3 px of cards' 160 px): the count leads, the corners still count. NME alone let a 40-epoch cards run keep
    the epoch whose count was 9.5 cards off while later epochs were 3 off (issue 31)."""
    return nme + count_mae / count_scale
