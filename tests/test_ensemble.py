"""Ensemble statistics by hand, and the ensemble smoothers against the exact Gaussian posterior of their models."""

import math

import numpy as np
import pytest
import torch

from kp.trajectories import Tracks, kalman
from kp.trajectories.ensemble import LATENT_SD, ensemble_smooth, ensemble_stats, subspace_smooth
from kp.trajectories.smooth import MIN_SIGMA, VELOCITY_SD
from kp.trajectories.tracks import Layout
from kp.unsupervised_losses import MultiviewPCALoss, PosePCALoss


def test_ensemble_stats_by_hand():
    predictions = np.array(
        [
            [[[1.0, 10.0]], [[5.0, 0.0]]],
            [[[2.0, 30.0]], [[np.nan, 1.0]]],
            [[[6.0, 20.0]], [[np.nan, np.nan]]],
        ]
    )  # M=3 members, N=2 frames, K=1
    scores = np.array([[[0.9], [0.5]], [[0.6], [0.7]], [[0.3], [np.nan]]])
    median, variance, score = ensemble_stats(predictions, scores)
    np.testing.assert_allclose(median[0, 0], [2.0, 20.0])
    np.testing.assert_allclose(variance[0, 0], [np.var([1, 2, 6]), np.var([10, 30, 20])])
    np.testing.assert_allclose(score[0, 0], 0.6)
    # frame 1: member 1 lacks x (the whole point counts missing), member 2 lacks everything
    np.testing.assert_allclose(median[1, 0], [5.0, 0.0])
    np.testing.assert_allclose(variance[1, 0], [0.0, 0.0])
    np.testing.assert_allclose(score[1, 0], 0.5)
    with pytest.raises(ValueError, match="M×N×K×2"):
        ensemble_stats(predictions[0], scores[0])


def dense_posterior(n, state, prior_precision, transition, observation):
    """The posterior of states x_0..x_n-1 (each `state` numbers) solved at once: prior precision on x_0,
    transition(t) -> (F, Q) for x_t = F x_t-1 + N(0, Q), observation(t) -> (H, R, y) or None. Returns the means
    n×state and the covariances n×state×state."""
    precision, b = np.zeros((n * state, n * state)), np.zeros(n * state)
    precision[:state, :state] += prior_precision
    for t in range(1, n):
        f, q = transition(t)
        step = np.zeros((state, n * state))
        step[:, (t - 1) * state : t * state] = -f
        step[:, t * state : (t + 1) * state] = np.eye(state)
        precision += step.T @ np.linalg.inv(q) @ step
    for t in range(n):
        seen = observation(t)
        if seen is not None:
            h, r, y = seen
            block = slice(t * state, (t + 1) * state)
            precision[block, block] += h.T @ np.linalg.inv(r) @ h
            b[block] += h.T @ np.linalg.inv(r) @ y
    cov = np.linalg.inv(precision)
    blocks = np.array([cov[t * state : (t + 1) * state, t * state : (t + 1) * state] for t in range(n)])
    return np.linalg.solve(precision, b).reshape(n, state), blocks


def members(truth, spread, m=4, seed=0):
    """m noisy copies of truth N×K×2, each keypoint's noise of sd `spread` (N×K)."""
    rng = np.random.default_rng(seed)
    return truth + rng.normal(0, 1, (m, *truth.shape)) * spread[..., None]


def test_ensemble_smoother_equals_the_exact_gaussian_posterior():
    """Constant-velocity model per coordinate, measurement variance = ensemble variance (mean of x, y) + the members'
    radius variance; gaps in the frame numbers and low-score frames."""
    rng = np.random.default_rng(2)
    frames = np.array([0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 14, 15])
    n, alpha = len(frames), 0.1
    truth = np.cumsum(rng.normal(0, 2, (n, 2, 2)), axis=0) + 100
    predictions = members(truth, rng.uniform(0.5, 3, (n, 2)))
    scores = np.full(predictions.shape[:3], 0.9)
    scores[:, [4, 5, 9], 0] = 0.1  # keypoint 0 missing in three frames
    radius = rng.uniform(1, 4, predictions.shape[:3])
    fit = ensemble_smooth(predictions, scores, frames, radius, alpha=alpha, threshold=0.3)
    median, variance, _ = ensemble_stats(predictions, scores)
    r = variance.mean(-1) + (radius**2).mean(0) / (-2 * math.log(alpha))
    for k in range(2):
        q = fit.process_noise[k]
        ok = scores[0, :, k] >= 0.3

        def transition(t, q=q):
            dt = frames[t] - frames[t - 1]
            return np.array([[1, dt], [0, 1]]), q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])

        for c in range(2):

            def observation(t, k=k, c=c, ok=ok):
                return (np.array([[1.0, 0.0]]), np.array([[r[t, k]]]), median[t, k, c : c + 1]) if ok[t] else None

            mean, cov = dense_posterior(n, 2, np.diag([0, 1 / VELOCITY_SD**2]), transition, observation)
            np.testing.assert_allclose(fit.xy[:, k, c], mean[:, 0], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(fit.sd[:, k, c] ** 2, cov[:, 0, 0], rtol=1e-6)
    assert np.isfinite(fit.xy).all()


def ensemble_tracks(median, score, ens_var, radius, frames):
    """Tracks as read from an ensemble's predictions.csv (one video)."""
    n, k = score.shape
    names, groups = [f"k{i}" for i in range(k)], np.full(n, "clip.mp4", dtype=object)
    return Tracks(
        np.asarray(frames), names, median, score, radius, groups, Layout("kp", [], [], [], [], [], []), ens_var
    )


def test_kp_smooth_of_an_ensemble_csv_equals_the_exact_gaussian_posterior():
    """kp smooth's Kalman on tracks with an ensemble spread (the _ens_var columns): measurement variance per
    coordinate ens_var / 2 + radius² / (-2 ln alpha), no radius in some frames, gaps and low-score frames."""
    rng = np.random.default_rng(6)
    frames = np.array([0, 1, 2, 3, 5, 6, 7, 10, 11, 12, 13, 15, 16])
    n, alpha = len(frames), 0.2
    median = np.cumsum(rng.normal(0, 2, (n, 2, 2)), axis=0) + 50
    ens_var = rng.uniform(0.1, 30, (n, 2))
    radius = rng.uniform(1, 5, (n, 2))
    radius[[2, 7], 1] = np.nan  # frames without a calibrated radius: the spread alone
    score = np.full((n, 2), 0.8)
    score[[3, 4], 0] = 0.05  # below the threshold: missing
    fit = kalman(ensemble_tracks(median, score, ens_var, radius, frames), threshold=0.3, alpha=alpha)
    r = ens_var / 2 + np.nan_to_num(radius**2) / (-2 * math.log(alpha))
    for k in range(2):
        q = fit.process_noise["clip.mp4"][k]

        def transition(t, q=q):
            dt = frames[t] - frames[t - 1]
            return np.array([[1, dt], [0, 1]]), q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])

        for c in range(2):

            def observation(t, k=k, c=c):
                return (np.eye(1, 2), np.array([[r[t, k]]]), median[t, k, c : c + 1]) if score[t, k] >= 0.3 else None

            mean, cov = dense_posterior(n, 2, np.diag([0, 1 / VELOCITY_SD**2]), transition, observation)
            np.testing.assert_allclose(fit.xy[:, k, c], mean[:, 0], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(fit.sd[:, k] ** 2, cov[:, 0, 0], rtol=1e-6)


def test_kp_smooth_of_an_ensemble_csv_is_ensemble_smooth_of_its_members():
    """One path: the CSV's median and spread through kalman() give ensemble_smooth's trajectories and q."""
    rng = np.random.default_rng(7)
    truth = np.cumsum(rng.normal(0, 1.5, (80, 3, 2)), axis=0) + 100
    predictions = members(truth, rng.uniform(0.3, 4, (80, 3)), m=5, seed=8)
    scores = rng.uniform(0.2, 1, predictions.shape[:3])
    direct = ensemble_smooth(predictions, scores)
    median, variance, score = ensemble_stats(predictions, scores)
    tracks = ensemble_tracks(median, score, variance.sum(-1), np.full(score.shape, np.nan), np.arange(80))
    fit = kalman(tracks)
    np.testing.assert_allclose(fit.xy, direct.xy, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fit.sd, direct.sd[..., 0], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fit.process_noise["clip.mp4"], direct.process_noise, rtol=1e-12)


def test_ensemble_smoother_follows_agreeing_members_and_discounts_disagreeing_ones():
    n = 200
    truth = np.stack([np.linspace(0, 100, n), np.full(n, 50.0)], -1)[:, None]  # one keypoint, steady motion
    spread = np.full((n, 1), 0.5)
    spread[[50, 120]] = 40.0  # two frames where the members disagree wildly
    predictions = members(truth, spread, m=5, seed=1)
    fit = ensemble_smooth(predictions, np.ones(predictions.shape[:3]))
    median_error = np.linalg.norm(fit.median - truth, axis=-1)[[50, 120]]
    smoothed_error = np.linalg.norm(fit.xy - truth, axis=-1)[[50, 120]]
    assert (smoothed_error < 1.0).all() and (median_error > 2.0).all()
    assert np.sqrt(np.mean((fit.xy - truth) ** 2)) < np.sqrt(np.mean((fit.median - truth) ** 2))


def pose_term(k=5, dims=2, seed=0):
    """A pose_pca term fitted on exact poses of k keypoints spanned by `dims` directions, and a pose maker."""
    rng = np.random.default_rng(seed)
    mean, directions = rng.uniform(50, 150, 2 * k), rng.normal(0, 1, (dims, 2 * k))

    def pose(coefficients):
        return (mean + coefficients @ directions).reshape(*coefficients.shape[:-1], k, 2)

    term = PosePCALoss().fit([f"k{i}" for i in range(k)], pose(rng.normal(0, 20, (60, dims))))
    return term, pose


def test_subspace_smoother_equals_the_exact_gaussian_posterior():
    """Random walk on the PCA coefficients, the stacked keypoints observed through the components with the ensemble
    variance per keypoint; a keypoint missing in some frames drops out of those frames' observation."""
    rng = np.random.default_rng(4)
    term, pose = pose_term()
    frames = np.array([0, 1, 2, 3, 5, 6, 7, 9, 10, 11])
    n = len(frames)
    truth = pose(np.cumsum(rng.normal(0, 3, (n, 2)), axis=0))
    predictions = members(truth, rng.uniform(0.5, 3, (n, 5)))
    scores = np.ones(predictions.shape[:3])
    scores[:, [3, 4], 1] = 0.0  # keypoint 1 missing in frames 3 and 4
    fit = subspace_smooth(predictions, scores, term, frames)
    median, variance, _ = ensemble_stats(predictions, scores)
    r = np.maximum(variance.mean(-1), MIN_SIGMA**2)
    components, mean = term.subspace.components.numpy(), term.subspace.mean.numpy()
    q = fit.process_noise[0]
    assert (fit.process_noise == q).all()  # one latent state for the whole pose

    def transition(t):
        return np.eye(2), q * (frames[t] - frames[t - 1]) * np.eye(2)

    def observation(t):
        seen = np.repeat(scores[0, t] >= 0.3, 2)
        variances = np.repeat(r[t], 2)[seen]
        return components[seen], np.diag(variances), (median[t].ravel() - mean)[seen]

    latent, cov = dense_posterior(n, 2, np.eye(2) / LATENT_SD**2, transition, observation)
    expected = (mean + latent @ components.T).reshape(n, 5, 2)
    expected_var = np.einsum("dc,nce,de->nd", components, cov, components).reshape(n, 5, 2)
    np.testing.assert_allclose(fit.xy, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fit.sd**2, expected_var, rtol=1e-6)
    # the smoothed poses lie in the PCA subspace
    assert term.keypoint_errors(torch.tensor(fit.xy)).max() < 1e-3  # float32 on coordinates of ~100 px


def test_multiview_subspace_smoother_keeps_single_view_keypoints_as_the_plain_smoother():
    rng = np.random.default_rng(0)
    cameras = [(rng.normal(0, 1, (2, 3)), rng.uniform(100, 300, 2)) for _ in range(2)]

    def views(points):  # ...×P×3 -> ...×(2P + 1)×2: P parts in two views, then an extra single-view keypoint
        both = np.concatenate([points @ m.T + b for m, b in cameras], axis=-2)
        return np.concatenate([both, both[..., :1, :] + 5], axis=-2)

    names = ["a_top", "b_top", "a_bot", "b_bot", "extra"]
    term = MultiviewPCALoss().fit(names, views(rng.normal(0, 30, (40, 2, 3))))
    truth = views(np.cumsum(rng.normal(0, 2, (30, 2, 3)), axis=0))
    predictions = members(truth, np.full((30, 5), 1.5))
    scores = np.ones(predictions.shape[:3])
    fit = subspace_smooth(predictions, scores, term)
    plain = ensemble_smooth(predictions, scores)
    np.testing.assert_allclose(fit.xy[:, 4], plain.xy[:, 4])
    assert not np.allclose(fit.xy[:, :4], plain.xy[:, :4])

    def rmse(xy):
        return np.sqrt(np.mean((xy[:, :4] - truth[:, :4]) ** 2))

    assert rmse(fit.xy) < rmse(fit.median)
