"""Gaussian heatmap targets.

Coordinate convention (written once, used by encode and decode): pixel centres sit at integer coordinates, so the
top-left pixel of the image is (0, 0) and covers [-0.5, 0.5]². Heatmap pixel u at stride s covers input pixels
[u*s, u*s + s - 1], whose centre is
    x = u * s + (s - 1) / 2        and conversely        u = (x - (s - 1) / 2) / s
`sigma` is in heatmap pixels.

Styles of target:
  gaussian      exp(-d²/2σ²) around the exact (sub-pixel) keypoint
  blurred_disc  the cat seed's: a disc drawn with cv2.circle (radius 2, thickness 2) at the nearest heatmap pixel, then
                a 5×5 Gaussian blur (peak 1; sigma is not used)

Decoders:
  argmax   the hottest pixel (error up to half a heatmap pixel)
  average  weighted mean of the (non-negative) heatmap values in a window around the hottest pixel (the seeds'
           "average of all heatmap values" with window=None)
  quarter  argmax shifted a quarter pixel towards the hotter neighbour (Newell et al.)
  dark     a Newton step on the log-heatmap around the hottest pixel (DARK, Zhang et al. 2020): exact for a Gaussian,
           optionally after blurring the prediction with a Gaussian kernel
None of them passes a gradient to the heatmap's shape: soft_argmax (below) does, for losses on decoded keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from kp.codecs.base import flip_back_heads

# Heat below this fraction of a map's peak is left out of its spread (HeatmapCodec.spread).
SPREAD_FLOOR = 0.1
DECODERS = ("argmax", "average", "quarter", "dark")
STYLES = ("gaussian", "blurred_disc")
# soft_argmax's sharpening power. Near a Gaussian peak of sigma σ, heatmap^p is a Gaussian of sd σ / sqrt(p): at
# p = 4 still wide enough (σ >= 1.5 heatmap pixels) that its mean on the pixel grid is the sub-pixel centre, while
# background heat is crushed (0.05^4 = 6e-6), which a softmax of a map peaking at 1 does not do without a temperature
# so high that the mean snaps to the grid (0.14 px off at σ = 1.5 with softmax(20 × map)).
SOFT_ARGMAX_POWER = 4


def soft_argmax(heatmaps: torch.Tensor, stride: int = 1, power: int = SOFT_ARGMAX_POWER):
    """Differentiable keypoints from heatmaps B×K×h×w: the mean pixel position weighted by max(heatmap, 0)^power, in
    input pixels (the codec's convention), B×K×2, and a confidence B×K, the map's peak value (what decode scores).
    A map with no positive heat gives the point (0, 0) at confidence <= 0."""
    b, k, h, w = heatmaps.shape
    weights = heatmaps.float().clamp(min=0) ** power
    weights = weights / weights.sum((-2, -1), keepdim=True).clamp(min=1e-30)
    xs = torch.arange(w, device=heatmaps.device, dtype=weights.dtype)
    ys = torch.arange(h, device=heatmaps.device, dtype=weights.dtype)
    points = torch.stack([(weights.sum(-2) * xs).sum(-1), (weights.sum(-1) * ys).sum(-1)], -1)
    return points * stride + (stride - 1) / 2, heatmaps.float().flatten(2).amax(-1)


def blurred_disc_stamp() -> torch.Tensor:
    """The cat seed's heatmap around one keypoint, drawn the seed's way (11×11, centred, peak 1)."""
    canvas = np.zeros((21, 21), np.float32)  # room around the disc, so the blur's border rule plays no part
    cv2.circle(canvas, (10, 10), 2, 1.0, 2)
    return torch.from_numpy(cv2.GaussianBlur(canvas, (5, 5), 0)[5:16, 5:16].copy())


class HeatmapCodec:
    name = "heatmap"

    def __init__(
        self,
        input_size: tuple[int, int],
        stride: int = 1,
        sigma: float = 2.0,
        decoder: str = "dark",
        window: int | None = None,
        blur_kernel: int = 0,
        style: str = "gaussian",
    ):
        if style not in STYLES:
            raise ValueError(f"heatmap style must be one of {STYLES}, got {style!r}")
        if decoder not in DECODERS:
            raise ValueError(f"heatmap decoder must be one of {DECODERS}, got {decoder!r}")
        if stride < 1 or input_size[0] % stride or input_size[1] % stride:
            raise ValueError(f"stride {stride} must divide the input size {tuple(input_size)}")
        self.height, self.width = input_size
        self.stride, self.sigma, self.decoder = stride, sigma, decoder
        self.window, self.blur_kernel, self.style = window, blur_kernel, style
        self.stamp = blurred_disc_stamp() if style == "blurred_disc" else None
        self.heatmap_size = (self.height // stride, self.width // stride)

    def to_heatmap(self, keypoints: torch.Tensor) -> torch.Tensor:
        return (keypoints - (self.stride - 1) / 2) / self.stride

    def to_image(self, points: torch.Tensor) -> torch.Tensor:
        return points * self.stride + (self.stride - 1) / 2

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = self.heatmap_size
        centre = self.to_heatmap(keypoints.float())
        weights = visible.float()
        if self.stamp is not None:
            return {"keypoints": self._stamp(centre) * weights[..., None, None], "keypoint_weights": weights}
        xs = torch.arange(w, device=keypoints.device, dtype=torch.float32)
        ys = torch.arange(h, device=keypoints.device, dtype=torch.float32)
        gx = torch.exp(-((xs - centre[..., 0:1]) ** 2) / (2 * self.sigma**2))  # B×K×w
        gy = torch.exp(-((ys - centre[..., 1:2]) ** 2) / (2 * self.sigma**2))  # B×K×h
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
        return {"keypoints": heatmaps, "keypoint_weights": weights}

    def _stamp(self, centre: torch.Tensor) -> torch.Tensor:
        """The stamp pasted at each keypoint's nearest heatmap pixel, B×K×h×w."""
        h, w = self.heatmap_size
        stamp = self.stamp.to(centre.device)
        radius = stamp.shape[0] // 2
        pixel = centre.round().long()
        dx = torch.arange(w, device=centre.device) - pixel[..., 0:1] + radius  # B×K×w, index into the stamp
        dy = torch.arange(h, device=centre.device) - pixel[..., 1:2] + radius  # B×K×h
        inside = ((dy >= 0) & (dy <= 2 * radius))[..., :, None] & ((dx >= 0) & (dx <= 2 * radius))[..., None, :]
        values = stamp[dy.clamp(0, 2 * radius)[..., :, None], dx.clamp(0, 2 * radius)[..., None, :]]
        return values * inside

    def decode(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps = outputs["keypoints"].float()
        b, k, h, w = heatmaps.shape
        scores, flat_index = heatmaps.flatten(2).max(-1)
        peak = torch.stack([flat_index % w, flat_index // w], -1)  # B×K×2 integer (x, y)
        if self.decoder == "argmax":
            points = peak.float()
        elif self.decoder == "average":
            points = self._average(heatmaps, peak)
        elif self.decoder == "quarter":
            points = peak.float() + 0.25 * self._neighbour_sign(heatmaps, peak)
        else:
            points = self._dark(heatmaps, peak)
        return self.to_image(points), scores

    def spread(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Root mean squared distance of the map's mass from its peak, in input pixels: the heat above SPREAD_FLOOR
        of the peak counts (below it, the background noise of a large map would swamp the keypoint's own blob). A
        sharp single peak gives about sigma × stride; a flat or two-peaked map, much more."""
        heatmaps = outputs["keypoints"].float().clamp(min=0)
        b, k, h, w = heatmaps.shape
        peak_value, flat_index = heatmaps.flatten(2).max(-1)
        weights = heatmaps * (heatmaps >= SPREAD_FLOOR * peak_value[..., None, None])
        xs = torch.arange(w, device=heatmaps.device, dtype=torch.float32) - (flat_index % w)[..., None]  # B×K×w
        ys = torch.arange(h, device=heatmaps.device, dtype=torch.float32) - (flat_index // w)[..., None]  # B×K×h
        squared = ys[..., :, None] ** 2 + xs[..., None, :] ** 2
        total = weights.sum((-2, -1)).clamp(min=1e-12)
        return ((weights * squared).sum((-2, -1)) / total).sqrt().clamp(min=0.5) * self.stride

    def flip_back(self, outputs: dict[str, torch.Tensor], permutation: Sequence[int]) -> dict[str, torch.Tensor]:
        # Heatmap pixel u is centred on input pixel u*s + (s-1)/2, and the mirror of that, W - 1 - u*s - (s-1)/2,
        # is the centre of heatmap pixel W/s - 1 - u: mirroring the map column order is exact at every stride.
        heatmaps = outputs["keypoints"].flip(-1)[:, list(permutation)]
        return flip_back_heads(outputs, {"keypoints": heatmaps}, permutation)

    @staticmethod
    def _at(heatmaps: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """heatmaps[b, k, y, x] for B×K index tensors (clamped to the map)."""
        h, w = heatmaps.shape[-2:]
        index = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).unsqueeze(-1)
        return heatmaps.flatten(2).gather(-1, index).squeeze(-1)

    def _neighbour_sign(self, heatmaps: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        x, y = peak[..., 0], peak[..., 1]
        dx = self._at(heatmaps, x + 1, y) - self._at(heatmaps, x - 1, y)
        dy = self._at(heatmaps, x, y + 1) - self._at(heatmaps, x, y - 1)
        return torch.stack([dx.sign(), dy.sign()], -1)

    def _average(self, heatmaps: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        h, w = heatmaps.shape[-2:]
        values = heatmaps.clamp(min=0)
        xs = torch.arange(w, device=heatmaps.device, dtype=values.dtype)
        ys = torch.arange(h, device=heatmaps.device, dtype=values.dtype)
        if self.window is not None:
            near_x = (xs - peak[..., 0:1]).abs() <= self.window  # B×K×w
            near_y = (ys - peak[..., 1:2]).abs() <= self.window  # B×K×h
            values = values * near_y[..., :, None] * near_x[..., None, :]
        total = values.sum((-2, -1)).clamp(min=1e-12)
        x = (values.sum(-2) * xs).sum(-1) / total
        y = (values.sum(-1) * ys).sum(-1) / total
        return torch.stack([x, y], -1)

    def _dark(self, heatmaps: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        b, k, h, w = heatmaps.shape
        if self.blur_kernel > 1:
            heatmaps = self._blur(heatmaps)
        logs = heatmaps.clamp(min=1e-10).log()
        # Expand around the peak, moved one pixel inwards at the border so that both neighbours exist.
        x = peak[..., 0].clamp(1, max(w - 2, 1))
        y = peak[..., 1].clamp(1, max(h - 2, 1))
        at = lambda dx, dy: self._at(logs, x + dx, y + dy)
        centre = at(0, 0)
        gx, gy = (at(1, 0) - at(-1, 0)) / 2, (at(0, 1) - at(0, -1)) / 2
        hxx, hyy = at(1, 0) - 2 * centre + at(-1, 0), at(0, 1) - 2 * centre + at(0, -1)
        hxy = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / 4
        det = hxx * hyy - hxy**2
        # Newton step -H⁻¹g, only where the log-heatmap is locally a proper maximum.
        ok = (det > 1e-12) & (hxx < 0)
        safe_det = torch.where(ok, det, torch.ones_like(det))
        step_x = -(hyy * gx - hxy * gy) / safe_det
        step_y = -(hxx * gy - hxy * gx) / safe_det
        refined = torch.stack([x + step_x, y + step_y], -1)
        refined = torch.where(ok[..., None], refined, peak.float())
        # A step that leaves the peak's neighbourhood means the map is not Gaussian there: stay near the peak.
        return torch.minimum(torch.maximum(refined, peak.float() - 1), peak.float() + 1)

    def _blur(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Gaussian blur (sigma of the codec) that keeps each map's maximum, as DARK's modulation step does."""
        size = self.blur_kernel | 1
        offsets = torch.arange(size, device=heatmaps.device, dtype=heatmaps.dtype) - size // 2
        kernel = torch.exp(-(offsets**2) / (2 * self.sigma**2))
        kernel = kernel / kernel.sum()
        b, k, h, w = heatmaps.shape
        maps = heatmaps.reshape(b * k, 1, h, w)
        maps = F.conv2d(F.pad(maps, [size // 2] * 4, mode="replicate"), kernel.view(1, 1, 1, -1))
        maps = F.conv2d(maps, kernel.view(1, 1, -1, 1))
        peak_before = heatmaps.reshape(b * k, -1).amax(-1).view(-1, 1, 1, 1)
        peak_after = maps.flatten(1).amax(-1).view(-1, 1, 1, 1).clamp(min=1e-12)
        return (maps * peak_before / peak_after).view(b, k, h, w)
