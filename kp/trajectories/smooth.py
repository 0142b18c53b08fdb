"""Smoothing keypoint tracks over time: a Kalman filter with a Rauch–Tung–Striebel smoother (the default), or a
Savitzky–Golay or median filter.

A frame is confident where its keypoint has a position and a score at or above `threshold`; the others are
missing and get filled, between a keypoint's first and last confident frame of a track (never extrapolated: frames
before and after stay empty). Every method smooths each track (a video, see tracks.py) on its own.

kalman: each keypoint's x and y are two independent constant-velocity models (position and velocity, driven by white
acceleration noise of spectral density q, px²/frame³) that share one covariance, so one 2×2 covariance per keypoint
serves both. Time is the frame number: a gap in the numbering (predict --every 5) is a longer step, not one frame.
  - Measurement noise per frame: kp's calibrated radius is the (1 - alpha) coverage radius of the prediction; read as
    an isotropic 2-D Gaussian's quantile, P(|error| <= r) = 1 - exp(-r² / 2σ²), so σ = r / sqrt(-2 ln alpha).
    Where a frame has no radius, σ = σ0 / score (clipped at MIN_SCORE): a frame scored half as high counts twice as
    uncertain, a heuristic the radius measures properly. σ0 is the median σ of the keypoint's calibrated frames; a
    keypoint with no radius at all (an uncalibrated model, DeepLabCut output) has σ0 fitted, below.
  - An ensemble's CSV (kp predict RUN1 RUN2 ..., with <keypoint>_ens_var columns): the Ensemble Kalman Smoother's
    noise instead, σ² = ens_var / 2 + radius² / (-2 ln alpha) (the members' spread per coordinate, plus the radius's
    variance where calibrated; ensemble_variance), nothing fitted but q. ensemble.py's smoothers share this code
    (fit_smoother).
  - Fitted per keypoint and track by maximum likelihood: the filter's innovation log-likelihood (the probability of
    each confident observation given the ones before it) is computed for q = λ σ0² over the log-spaced grid LAMBDAS
    (and for σ0 over SCALES times a noise estimate where there is no radius), all at once, and the best is kept. The
    first two observations only set position and velocity and are left out of the sum.
  - The posterior standard deviation (per coordinate) comes back with the smoothed positions; smooth() writes it as
    the radius, sd × sqrt(-2 ln alpha): the model's (1 - alpha) circle, not re-calibrated.
  Plain numpy rather than pykalman or filterpy: the filter is a few lines, needs no extra dependency, and runs every
  keypoint and every candidate q as one batch per frame, which those libraries (one model at a time) do not.

savgol, median: confident frames are linearly interpolated over the missing ones first (in frame numbers), then the
filter runs over rows in time order, which assumes evenly spaced frames.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace

import numpy as np

from kp.defaults import MISS_RATE, SCORE_THRESHOLD
from kp.trajectories.tracks import Tracks

METHODS = ("kalman", "savgol", "median")
LAMBDAS = np.logspace(-8, 3, 23)  # q / σ0² per frame³: 1e-8 keeps ~100 frames straight, 1e3 barely smooths
SCALES = 2.0 ** np.arange(-6, 1.5, 0.5)  # σ0 candidates, times the second-difference noise estimate (an upper bound)
VELOCITY_SD = 1e3  # px/frame: the unknown velocity at a track's first observation (a diffuse prior)
MIN_SCORE = 0.05
MIN_SIGMA = 1e-3  # px: a zero radius would make the filter trust a frame absolutely


@dataclass
class KalmanFit:
    xy: np.ndarray  # N×K×2 smoothed positions, NaN outside each keypoint's first..last confident frame
    sd: np.ndarray  # N×K posterior standard deviation per coordinate, px
    process_noise: dict[str, np.ndarray]  # per track: K fitted q, px²/frame³
    noise: dict[str, np.ndarray]  # per track: K σ0 used, px (fitted where the keypoint has no radius)


@dataclass
class Report:
    track: str
    keypoint: str
    frames: int
    filled: int  # missing or low-score frames that got a position
    jump_before: float  # mean frame-to-frame distance between consecutive confident raw frames, px
    jump_after: float  # the same for consecutive smoothed frames
    process_noise: float = math.nan  # kalman's fitted q


def smooth(tracks: Tracks, method: str = "kalman", **options) -> tuple[Tracks, list[Report]]:
    """The tracks smoothed by `method` (kalman, savgol or median, with that function's options), and a report per
    track and keypoint. kalman also replaces the radius of calibrated keypoints with the posterior one."""
    if method not in METHODS:
        raise ValueError(f"unknown smoothing method {method!r}: choose one of {', '.join(METHODS)}")
    function = {"kalman": kalman, "savgol": savgol, "median": median}[method]
    signature = inspect.signature(function)
    unknown = sorted(set(options) - set(list(signature.parameters)[1:]))
    if unknown:
        raise ValueError(
            f"{method} has no option {unknown[0]!r} (its options: {', '.join(list(signature.parameters)[1:])})"
        )
    arguments = signature.bind(tracks, **options)
    arguments.apply_defaults()
    fit = None
    if method == "kalman":
        fit = kalman(tracks, **options)
        factor = math.sqrt(-2 * math.log(arguments.arguments["alpha"]))
        calibrated = np.isfinite(tracks.radius).any(axis=0)
        smoothed = replace(tracks, xy=fit.xy, radius=np.where(calibrated, fit.sd * factor, tracks.radius))
    else:
        smoothed = replace(tracks, xy=function(tracks, **options))
    return smoothed, _report(tracks, smoothed, arguments.arguments["threshold"], fit)


def kalman(tracks: Tracks, threshold: float = SCORE_THRESHOLD, alpha: float = MISS_RATE) -> KalmanFit:
    """Constant-velocity Kalman filter and RTS smoother per keypoint, its noise fitted per track (module docstring)."""
    _check_threshold(threshold)
    if not _number(alpha) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (the radius's miss rate), got {alpha}")
    confident = tracks.confident(threshold)
    xy, sd = np.full_like(tracks.xy, np.nan), np.full(tracks.score.shape, np.nan)
    process_noise, noise = {}, {}
    for track, rows in tracks.track_rows():
        z, ok = np.nan_to_num(tracks.xy[rows]), confident[rows]
        if tracks.ens_var is None:
            sigma, scales = _measurement_sigma(z, ok, tracks.radius[rows], tracks.score[rows], alpha)
        else:  # an ensemble's CSV: its spread is the noise, nothing to fit but q
            sigma = np.sqrt(ensemble_variance(tracks.ens_var[rows], tracks.radius[rows], alpha))
            scales = np.ones((1, ok.shape[1]))
        fit = fit_smoother(z, ok, sigma, scales, np.diff(tracks.frames[rows]).astype(float))
        xy[rows], sd[rows] = fit.xy, fit.sd
        process_noise[track], noise[track] = fit.process_noise, fit.noise
    return KalmanFit(xy, sd, process_noise, noise)


@dataclass
class TrackFit:
    xy: np.ndarray  # n×K×2 smoothed positions, NaN outside each keypoint's first..last confident frame
    sd: np.ndarray  # n×K posterior standard deviation per coordinate, px
    process_noise: np.ndarray  # K fitted q, px²/frame³
    noise: np.ndarray  # K σ0 used, px


def fit_smoother(z: np.ndarray, ok: np.ndarray, sigma: np.ndarray, scales: np.ndarray, dt: np.ndarray) -> TrackFit:
    """The one Kalman path of kalman() and the ensemble smoothers: on one track's measurements z (n×K×2) with
    confident frames ok (n×K) and per-frame noise sigma (n×K, px), fit q (and σ0 = scale × the median σ of the
    confident frames, for each of the S×K `scales`) by maximum likelihood, then smooth with the best; dt: n - 1 steps
    in frames."""
    base = np.array([np.median(sigma[ok[:, k], k]) if ok[:, k].any() else 1.0 for k in range(ok.shape[1])])
    # Every (σ0 scale, λ) pair for every keypoint in one batch: G = scales × LAMBDAS rows, K columns.
    scale2 = np.repeat(scales**2, len(LAMBDAS), axis=0)
    q = scale2 * np.tile(LAMBDAS, len(scales))[:, None] * base**2
    loglik, _ = kalman_filter(z, ok, sigma**2, scale2, q, dt)
    pick = (loglik.argmax(axis=0), np.arange(ok.shape[1]))
    mean, var = rts_smoother(z, ok, sigma**2, scale2[pick][None], q[pick][None], dt)
    inside = between_observations(ok)
    xy, sd = np.where(inside[..., None], mean, np.nan), np.where(inside, np.sqrt(var), np.nan)
    return TrackFit(xy, sd, q[pick], np.sqrt(scale2[pick]) * base)


def ensemble_variance(ens_var: np.ndarray, radius: np.ndarray, alpha: float) -> np.ndarray:
    """An ensemble's measurement variance per coordinate (n×K, px²), the Ensemble Kalman Smoother's: half the
    members' spread ens_var (variance of x + variance of y), plus the calibrated radius's variance
    radius² / (-2 ln alpha) where there is a radius (NaN: none), floored at MIN_SIGMA²."""
    spread = np.nan_to_num(ens_var) / 2 + np.nan_to_num(radius**2) / (-2 * math.log(alpha))
    return np.maximum(spread, MIN_SIGMA**2)


def savgol(tracks: Tracks, window: int = 7, polyorder: int = 2, threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """Savitzky–Golay filter (a least-squares polynomial of `polyorder` over `window` frames), N×K×2."""
    from scipy.signal import savgol_filter  # scipy comes with albumentations

    _check_window(window)
    if not _whole(polyorder) or not 0 <= polyorder < window:
        raise ValueError(f"polyorder must be a whole number from 0 to window - 1 = {window - 1}, got {polyorder!r}")

    def run(segment):
        # mode=interp fits the polynomial to the ends too, but needs a segment at least a window long
        return savgol_filter(segment, window, polyorder, axis=0, mode="interp" if len(segment) >= window else "nearest")

    return _by_segment(tracks, threshold, run)


def median(tracks: Tracks, window: int = 5, threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """Running median over `window` frames (ends padded with the end value), N×K×2."""
    _check_window(window)

    def run(segment):
        padded = np.pad(segment, ((window // 2, window // 2), (0, 0)), mode="edge")
        return np.median(np.lib.stride_tricks.sliding_window_view(padded, window, axis=0), axis=-1)

    return _by_segment(tracks, threshold, run)


def kalman_filter(z, ok, sigma2, scale2, q, dt, keep=False):
    """Kalman filter over n frames for a batch of G models × K keypoints. z: n×K×2 measurements, ok: n×K confident,
    sigma2: n×K measurement variances, times scale2 (G×K); q: G×K process noise; dt: n - 1 steps in frames.
    The state is position and velocity (G×K×2 each: x, y) with covariance [[a, b], [b, c]] (G×K), shared by x and y;
    written out in components, which runs several times faster than numpy's matrix products on 2×2 blocks.
    Returns the innovation log-likelihood (G×K) and, with keep, the filtered state of every frame."""
    pos, vel = np.zeros(q.shape + (2,)), np.zeros(q.shape + (2,))
    a, b, c = np.ones(q.shape), np.zeros(q.shape), np.ones(q.shape)
    seen = np.zeros(ok.shape[1], int)
    loglik, kept = np.zeros(q.shape), []
    for t in range(len(ok)):
        if t:
            pos, vel, a, b, c = _predict(pos, vel, a, b, c, q, dt[t - 1])
        r = scale2 * sigma2[t]
        # A keypoint's track starts at its first observation: position measured, velocity unknown.
        start, update = ok[t] & (seen == 0), ok[t] & (seen > 0)
        pos, vel = np.where(start[:, None], z[t], pos), np.where(start[:, None], 0.0, vel)
        a, b, c = np.where(start, r, a), np.where(start, 0.0, b), np.where(start, VELOCITY_SD**2, c)
        s = a + r
        innovation = z[t] - pos
        pos = np.where(update[:, None], pos + (a / s)[..., None] * innovation, pos)
        vel = np.where(update[:, None], vel + (b / s)[..., None] * innovation, vel)
        a, b, c = np.where(update, a * r / s, a), np.where(update, b * r / s, b), np.where(update, c - b * b / s, c)
        # The second observation only sets the velocity: the likelihood counts from the third on (x and y both).
        counted = ok[t] & (seen > 1)
        loglik += np.where(counted, -np.log(2 * np.pi * s) - 0.5 * (innovation**2).sum(-1) / s, 0)
        seen += ok[t]
        if keep:
            kept.append((pos, vel, a, b, c))
    return loglik, kept


def _predict(pos, vel, a, b, c, q, dt):
    """dt frames ahead: constant velocity, and white acceleration noise (q) integrated over the step."""
    return pos + dt * vel, vel, a + 2 * dt * b + dt * dt * c + q * dt**3 / 3, b + dt * c + q * dt**2 / 2, c + q * dt


def rts_smoother(z, ok, sigma2, scale2, q, dt):
    """Rauch–Tung–Striebel: the filter forward, then each frame corrected by the smoothed frame after it, with the gain
    J = P F' (F P F' + Q)^-1. One model per keypoint (G = 1). Returns positions n×K×2 and their variances n×K."""
    _, kept = kalman_filter(z, ok, sigma2, scale2, q, dt, keep=True)
    pos, vel, a, b, c = kept[-1]
    positions, variances = [pos[0]], [a[0]]
    for t in range(len(kept) - 2, -1, -1):
        fp, fv, fa, fb, fc = kept[t]
        pp, pv, pa, pb, pc = _predict(fp, fv, fa, fb, fc, q, dt[t])
        det, u, w = pa * pc - pb * pb, fa + dt[t] * fb, fb + dt[t] * fc  # P F' = [[u, fb], [w, fc]]
        j00, j01 = (u * pc - fb * pb) / det, (fb * pa - u * pb) / det
        j10, j11 = (w * pc - fc * pb) / det, (fc * pa - w * pb) / det
        dp, dv = pos - pp, vel - pv
        pos = fp + j00[..., None] * dp + j01[..., None] * dv
        vel = fv + j10[..., None] * dp + j11[..., None] * dv
        da, db, dc = a - pa, b - pb, c - pc
        a, b, c = (
            fa + j00 * j00 * da + 2 * j00 * j01 * db + j01 * j01 * dc,
            fb + j00 * j10 * da + (j00 * j11 + j01 * j10) * db + j01 * j11 * dc,
            fc + j10 * j10 * da + 2 * j10 * j11 * db + j11 * j11 * dc,
        )
        positions.append(pos[0])
        variances.append(a[0])
    return np.array(positions[::-1]), np.array(variances[::-1])


def _measurement_sigma(z, ok, radius, score, alpha):
    """σ per frame (n×K, px) and the σ0 scales to try (S×K): ones for keypoints with a radius, SCALES times a noise
    estimate for the others, where the frames' σ is then 1 / score."""
    sigma = radius / math.sqrt(-2 * math.log(alpha))
    calibrated = (np.isfinite(sigma) & ok).any(axis=0)
    base = np.array(
        [np.median(sigma[ok[:, k] & np.isfinite(sigma[:, k]), k]) if calibrated[k] else 1.0 for k in range(ok.shape[1])]
    )
    sigma = np.where(np.isfinite(sigma), sigma, base / np.clip(np.nan_to_num(score), MIN_SCORE, 1))
    if calibrated.all():
        return np.maximum(sigma, MIN_SIGMA), np.ones((1, ok.shape[1]))
    scales = np.where(calibrated, 1.0, SCALES[:, None] * _noise_estimate(z, ok))
    return np.maximum(sigma, MIN_SIGMA), scales


def _noise_estimate(z, ok):
    """Per keypoint, the measurement noise white noise alone would give: the robust sd of second differences over
    confident triples, / sqrt(6). Motion adds to it, so it is an upper bound (SCALES reach below it)."""
    both = ok[2:] & ok[1:-1] & ok[:-2]
    second = z[2:] - 2 * z[1:-1] + z[:-2]
    out = np.ones(ok.shape[1])
    for k in range(ok.shape[1]):
        values = second[both[:, k], k].ravel()
        if len(values) >= 4:
            out[k] = max(1.4826 * np.median(np.abs(values - np.median(values))) / math.sqrt(6), MIN_SIGMA)
    return out


def between_observations(ok: np.ndarray) -> np.ndarray:
    """n×K: frames from each keypoint's first to its last confident frame (all False for a keypoint with none)."""
    index = np.arange(len(ok))[:, None]
    first, last = ok.argmax(axis=0), len(ok) - 1 - ok[::-1].argmax(axis=0)
    return (index >= first) & (index <= last) & ok.any(axis=0)


def _by_segment(tracks: Tracks, threshold: float, run) -> np.ndarray:
    """`run` (m×2 -> m×2) over each keypoint's first..last confident frames of each track, the missing ones linearly
    interpolated first."""
    _check_threshold(threshold)
    confident = tracks.confident(threshold)
    out = np.full_like(tracks.xy, np.nan)
    for _, rows in tracks.track_rows():
        t, ok = tracks.frames[rows], confident[rows]
        for k in np.flatnonzero(ok.any(axis=0)):
            span = np.flatnonzero(between_observations(ok[:, k : k + 1])[:, 0])
            known = ok[:, k]
            filled = np.stack([np.interp(t[span], t[known], tracks.xy[rows[known], k, c]) for c in range(2)], -1)
            out[rows[span], k] = run(filled)
    return out


def _report(raw: Tracks, smoothed: Tracks, threshold: float, fit: KalmanFit | None) -> list[Report]:
    confident = raw.confident(threshold)
    reports = []
    for track, rows in raw.track_rows():
        for k, name in enumerate(raw.names):
            ok, done = confident[rows, k], np.isfinite(smoothed.xy[rows, k]).all(axis=-1)
            reports.append(
                Report(
                    track,
                    name,
                    len(rows),
                    int((done & ~ok).sum()),
                    _mean_jump(raw.xy[rows, k], ok),
                    _mean_jump(smoothed.xy[rows, k], done),
                    float(fit.process_noise[track][k]) if fit else math.nan,
                )
            )
    return reports


def _mean_jump(xy: np.ndarray, ok: np.ndarray) -> float:
    pairs = ok[1:] & ok[:-1]
    return float(np.linalg.norm(xy[1:] - xy[:-1], axis=-1)[pairs].mean()) if pairs.any() else math.nan


def _number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_threshold(threshold: float) -> None:
    if not _number(threshold) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")


def _check_window(window: int) -> None:
    if not _whole(window) or window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd whole number of frames, at least 3, got {window!r}")
