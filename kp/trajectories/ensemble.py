"""Ensembles of models on the same frames, and an ensemble Kalman smoother (after lightning-pose's Ensemble Kalman
Smoother, Biderman et al. 2024).

Members are M models' predictions of the same N frames (M×N×K×2, NaN where missing, and scores M×N×K). Their median
is the measurement and their spread its noise: a frame where the members disagree counts as uncertain, one where they
agree pulls the trajectory to it.

  ensemble_stats         median, variance across members, mean score
  ensemble_smooth        smooth.py's constant-velocity Kalman smoother, per keypoint, on the median: each frame's
                         measurement variance is the ensemble variance (mean of x and y), plus the calibrated radius's
                         variance (radius² / (-2 ln alpha), averaged over members) when the members have one; the
                         process noise fitted per keypoint by maximum likelihood, as `kp smooth` does
  subspace_smooth        the same with a pose constraint: the latent state is the coefficients of a fitted pose_pca or
                         multiview_pca term (kp.unsupervised_losses), a random walk, and the observation the stacked
                         keypoints, mean + components × coefficients (EKS's linear observation model); keypoints the
                         term does not cover keep ensemble_smooth's result

`kp smooth` on the CSV of `kp predict RUN1 RUN2 ...` is ensemble_smooth on the median the CSV holds (the same
fit_smoother and ensemble_variance of smooth.py; the radius there is the members' median, not their mean square).
subspace_smooth is Python only: it needs a fitted term, which the command has no source for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from kp.defaults import MISS_RATE, SCORE_THRESHOLD
from kp.trajectories.smooth import LAMBDAS, between_observations, ensemble_variance, fit_smoother
from kp.unsupervised_losses import MultiviewPCALoss, PosePCALoss

LATENT_SD = 1e3  # px: the prior on the first frame's PCA coefficients, flat in effect


@dataclass
class EnsembleFit:
    xy: np.ndarray  # N×K×2 smoothed positions, NaN outside each keypoint's first..last confident frame
    sd: np.ndarray  # N×K×2 posterior standard deviation per coordinate, px
    process_noise: np.ndarray  # K fitted q (px²/frame³ for ensemble_smooth, px²/frame per coefficient for subspace)
    median: np.ndarray  # N×K×2, the members' median
    variance: np.ndarray  # N×K×2, the members' variance
    score: np.ndarray  # N×K, the members' mean score


def ensemble_stats(predictions: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and keypoint, over the members that have it: the median position N×K×2, the variance N×K×2
    (population variance, ddof 0, as EKS) and the mean score N×K; NaN where no member has the keypoint."""
    predictions, scores = np.asarray(predictions, float), np.asarray(scores, float)
    if predictions.ndim != 4 or predictions.shape[-1] != 2 or scores.shape != predictions.shape[:3]:
        raise ValueError(f"expected predictions M×N×K×2 and scores M×N×K, got {predictions.shape} and {scores.shape}")
    missing = ~np.isfinite(predictions).all(-1) | ~np.isfinite(scores)
    predictions = np.where(missing[..., None], np.nan, predictions)
    with warnings.catch_warnings():  # an all-missing keypoint is NaN, as documented, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return (
            np.nanmedian(predictions, axis=0),
            np.nanvar(predictions, axis=0),
            np.nanmean(np.where(missing, np.nan, scores), axis=0),
        )


def ensemble_smooth(
    predictions: np.ndarray,
    scores: np.ndarray,
    frames: np.ndarray | None = None,
    radius: np.ndarray | None = None,
    alpha: float = MISS_RATE,
    threshold: float = SCORE_THRESHOLD,
) -> EnsembleFit:
    """The members' median smoothed with its ensemble variance as measurement noise (module docstring). frames: N
    frame numbers (default 0..N-1; a gap is a longer step); radius: the members' calibrated radii M×N×K, or None."""
    median, variance, score = ensemble_stats(predictions, scores)
    sigma = np.sqrt(_measurement_variance(variance, radius, alpha))
    ok = np.isfinite(median).all(-1) & (np.nan_to_num(score, nan=-1.0) >= threshold)
    scales = np.ones((1, ok.shape[1]))  # the spread is the noise: only q is fitted
    fit = fit_smoother(np.nan_to_num(median), ok, sigma, scales, _steps(frames, len(median)))
    sd = np.repeat(fit.sd[..., None], 2, axis=-1)
    return EnsembleFit(fit.xy, sd, fit.process_noise, median, variance, score)


def subspace_smooth(
    predictions: np.ndarray,
    scores: np.ndarray,
    term: PosePCALoss,
    frames: np.ndarray | None = None,
    radius: np.ndarray | None = None,
    alpha: float = MISS_RATE,
    threshold: float = SCORE_THRESHOLD,
) -> EnsembleFit:
    """ensemble_smooth with the pose constraint of a fitted pose_pca or multiview_pca term (module docstring): per
    group of keypoints (all of them for pose_pca, each body part's views for multiview_pca), a Kalman smoother whose
    state is the group's PCA coefficients. The random walk's q is fitted per group by maximum likelihood."""
    fit = ensemble_smooth(predictions, scores, frames, radius, alpha, threshold)
    if term.subspace is None:
        raise RuntimeError(f"{type(term).__name__} is used before fit(names, poses)")
    r = _measurement_variance(fit.variance, radius, alpha)
    ok = np.isfinite(fit.median).all(-1) & (np.nan_to_num(fit.score, nan=-1.0) >= threshold)
    groups = term.index.tolist() if isinstance(term, MultiviewPCALoss) else [list(range(ok.shape[1]))]
    mean, components = term.subspace.mean.double().numpy(), term.subspace.components.double().numpy()
    n, dt = len(ok), _steps(frames, len(ok))
    for group in groups:
        y = np.nan_to_num(fit.median[:, group]).reshape(n, -1)  # n×2G, x and y interleaved as the PCA's vectors
        var = np.repeat(r[:, group, None], 2, axis=-1).reshape(n, -1)
        seen = np.repeat(ok[:, group, None], 2, axis=-1).reshape(n, -1)
        candidates = LAMBDAS * np.median(var[seen]) if seen.any() else LAMBDAS
        loglik, _ = _latent_filter(y, var, seen, mean, components, candidates, dt)
        q = candidates[loglik.argmax()]
        xy, coordinate_var = _latent_smoother(y, var, seen, mean, components, q, dt)
        inside = np.repeat(between_observations(ok[:, group])[..., None], 2, axis=-1)
        fit.xy[:, group] = np.where(inside, xy.reshape(inside.shape), np.nan)
        fit.sd[:, group] = np.where(inside, np.sqrt(coordinate_var).reshape(inside.shape), np.nan)
        fit.process_noise[group] = q
    return fit


def _measurement_variance(variance: np.ndarray, radius: np.ndarray | None, alpha: float) -> np.ndarray:
    """N×K: smooth.py's ensemble_variance of the members' spread (variance N×K×2) and their root-mean-square radius
    (radius M×N×K, or None)."""
    if radius is None:
        rms = np.full(variance.shape[:2], np.nan)
    else:
        with warnings.catch_warnings():  # a keypoint no member has a radius for has none
            warnings.simplefilter("ignore", RuntimeWarning)
            rms = np.sqrt(np.nanmean(np.asarray(radius, float) ** 2, axis=0))
    return ensemble_variance(variance.sum(-1), rms, alpha)


def _steps(frames: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(max(n - 1, 0)) if frames is None else np.diff(np.asarray(frames)).astype(float)


def _latent_filter(y, var, seen, mean, components, q, dt, keep=False):
    """Kalman filter for G candidate q at once: state c (G×C) a random walk (variance q × dt per step), observation
    y_t = mean + components @ c_t + noise of variance var_t, on the coordinates `seen` at t. y, var, seen: n×D.
    Returns the innovation log-likelihood (G) and, with keep, the filtered (state, covariance) of every frame."""
    c = components.shape[1]
    state, cov = np.zeros((len(q), c)), np.tile(LATENT_SD**2 * np.eye(c), (len(q), 1, 1))
    loglik, kept = np.zeros(len(q)), []
    for t in range(len(y)):
        if t:
            cov = cov + (q * dt[t - 1])[:, None, None] * np.eye(c)
        o = seen[t]
        if o.any():
            h = components[o]  # D'×C
            s = h @ cov @ h.T + np.diag(var[t, o])  # G×D'×D'
            innovation = y[t, o] - mean[o] - state @ h.T  # G×D'
            gain = np.linalg.solve(s, h @ cov).transpose(0, 2, 1)  # G×C×D' (s is symmetric)
            state = state + (gain @ innovation[..., None])[..., 0]
            cov = cov - gain @ h @ cov
            solved = np.linalg.solve(s, innovation[..., None])[..., 0]
            loglik -= 0.5 * (np.linalg.slogdet(2 * np.pi * s)[1] + (innovation * solved).sum(-1))
        if keep:
            kept.append((state[0], cov[0]))
    return loglik, kept


def _latent_smoother(y, var, seen, mean, components, q, dt):
    """Rauch–Tung–Striebel over _latent_filter with one q: the smoothed coordinates n×D and their variances n×D."""
    _, kept = _latent_filter(y, var, seen, mean, components, np.array([q]), dt, keep=True)
    state, cov = kept[-1]
    states, covs = [state], [cov]
    for t in range(len(kept) - 2, -1, -1):
        filtered, filtered_cov = kept[t]
        predicted_cov = filtered_cov + q * dt[t] * np.eye(len(state))
        gain = np.linalg.solve(predicted_cov, filtered_cov).T  # P P_pred⁻¹ (both symmetric)
        state = filtered + gain @ (state - filtered)
        cov = filtered_cov + gain @ (cov - predicted_cov) @ gain.T
        states.append(state)
        covs.append(cov)
    states, covs = np.array(states[::-1]), np.array(covs[::-1])
    return mean + states @ components.T, np.einsum("dc,nce,de->nd", components, covs, components)
