"""Keypoints that pass gradients (soft-argmax, the coordinates codec) and the loss terms that need no labels, on
synthetic poses where each loss's value is known."""

import csv
import logging
import math

import numpy as np
import pytest
import torch

from kp.codecs import CoordsCodec, HeatmapCodec, soft_argmax
from kp.errors import ConfigError
from kp.unsupervised_losses import (
    MultiviewPCALoss,
    PosePCALoss,
    TemporalLoss,
    guess_views,
    pca_keypoint_errors,
)
from tests.helpers import shared_data


@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_soft_argmax_matches_the_codec_on_a_sharp_gaussian(stride, sigma):
    codec = HeatmapCodec((64, 64), stride=stride, sigma=sigma, decoder="dark")
    keypoints = torch.rand(4, 5, 2, generator=torch.Generator().manual_seed(0)) * 40 + 12
    heatmaps = codec.encode(keypoints, torch.ones(4, 5, dtype=torch.bool))["keypoints"]
    points, confidence = soft_argmax(heatmaps, stride)
    decoded, scores = codec.decode({"keypoints": heatmaps})
    assert points.shape == (4, 5, 2) and confidence.shape == (4, 5)
    assert (points - decoded).abs().max() < 0.05 * stride
    assert (points - keypoints).abs().max() < 0.05 * stride
    torch.testing.assert_close(confidence, scores)


def test_soft_argmax_passes_gradients_to_the_heatmaps():
    heatmaps = HeatmapCodec((32, 32), sigma=2.0).encode(torch.tensor([[[10.3, 20.6]]]), torch.ones(1, 1, dtype=bool))
    heatmaps = heatmaps["keypoints"].requires_grad_()
    points, _ = soft_argmax(heatmaps)
    points[0, 0, 0].backward()
    gradient = heatmaps.grad[0, 0]
    # More heat right of the point moves it right: positive gradient on the right of x = 10.3, negative on the left.
    assert gradient[20, 12] > 0 > gradient[20, 8]


def test_the_coordinates_codec_decode_passes_gradients():
    codec = CoordsCodec((32, 48))
    normalised = torch.zeros(2, 3, 2, requires_grad=True)
    keypoints, _ = codec.decode({"keypoints": normalised})
    keypoints[..., 0].sum().backward()
    # x = ((n + 1) W - 1) / 2: dx/dn = W / 2
    torch.testing.assert_close(normalised.grad[..., 0], torch.full((2, 3), 24.0))


def test_warm_up_is_zero_then_rises_linearly():
    term = TemporalLoss(weight=2.0, warmup_start=2, warmup_epochs=4)
    assert [term.weight_at(epoch) for epoch in range(8)] == [0, 0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert TemporalLoss(weight=3.0).weight_at(0) == 3.0
    with pytest.raises(ConfigError, match="warmup_start"):
        TemporalLoss(warmup_start=-1)


def test_temporal_loss_is_zero_on_a_constant_track_and_known_on_a_jump():
    track = torch.tensor([[10.0, 20.0], [30.0, 40.0]]).expand(5, 2, 2).clone()  # T=5 frames, K=2
    scores = torch.ones(5, 2)
    term = TemporalLoss(epsilon=2.0)
    assert term(track, scores) == 0
    track[3:, 0] += torch.tensor([3.0, 4.0])  # keypoint 0 jumps 5 px between frames 2 and 3
    # one pair of 4×2 costs 5 - 2 = 3
    assert term(track, scores).item() == pytest.approx(3 / 8)
    # a low score in frame 3 of keypoint 0 masks its pairs (2, 3) and (3, 4), the jump among them
    scores[3, 0] = 0.1
    assert TemporalLoss(epsilon=2.0, score_threshold=0.5)(track, scores).item() == 0
    # clips in a batch: B×T×K×2
    batch = torch.stack([track, track + 1])
    assert TemporalLoss(epsilon=0.0)(batch, torch.ones(2, 5, 2)).item() == pytest.approx(2 * 5 / 16)


def poses_in_a_subspace(n, k=6, dims=3, seed=0):
    """n poses of k keypoints (px) spanned by a mean pose and `dims` directions."""
    rng = np.random.default_rng(seed)
    mean, directions = rng.uniform(50, 200, 2 * k), rng.normal(0, 1, (dims, 2 * k))
    coefficients = rng.normal(0, 20, (n, dims))
    return (mean + coefficients @ directions).reshape(n, k, 2), mean, directions


def test_pose_pca_loss_is_zero_in_the_subspace_and_grows_off_it():
    poses, mean, directions = poses_in_a_subspace(40)
    term = PosePCALoss(percentile=99.0).fit([f"k{i}" for i in range(6)], poses)
    assert term.subspace.components.shape == (12, 3)
    assert term.subspace.epsilon < 1e-6  # labels exactly in the subspace: their own errors are zero
    inside = torch.tensor((mean + np.array([5.0, -7.0, 11.0]) @ directions).reshape(1, 6, 2), dtype=torch.float32)
    assert term(inside).item() < 1e-3
    moved = inside.clone().requires_grad_()
    with torch.no_grad():
        moved[0, 2] += torch.tensor([6.0, 8.0])
    loss = term(moved)
    assert loss.item() > 0.5
    loss.backward()
    assert moved.grad[0, 2].norm() > 0
    errors = pca_keypoint_errors(term, moved.detach().numpy())
    assert errors.shape == (1, 6) and errors[0].argmax() == 2


def test_pose_pca_epsilon_is_the_percentile_of_the_labels_own_errors():
    poses, _, _ = poses_in_a_subspace(200, dims=3)
    noisy = poses + np.random.default_rng(1).normal(0, 0.5, poses.shape)
    term = PosePCALoss(variance=0.99, percentile=90.0).fit([f"k{i}" for i in range(6)], noisy)
    own = pca_keypoint_errors(term, noisy)
    assert term.subspace.epsilon == pytest.approx(np.percentile(own, 90.0), rel=1e-4)
    assert np.mean(own > term.subspace.epsilon) == pytest.approx(0.1, abs=0.01)


def test_pose_pca_refuses_too_few_complete_frames_in_one_line():
    poses, _, _ = poses_in_a_subspace(20)
    poses[:10, 1] = np.nan
    with pytest.raises(ConfigError, match=r"10 of 20 labelled frames are complete .* needs at least 12") as error:
        PosePCALoss().fit([f"k{i}" for i in range(6)], poses)
    assert "\n" not in str(error.value)


def two_affine_views(n_frames, parts, seed=0):
    """parts 3-D points per frame seen through two random affine cameras: N×(2·parts)×2, names <part>_top, _bot."""
    rng = np.random.default_rng(seed)
    cameras = [(rng.normal(0, 1, (2, 3)), rng.uniform(100, 300, 2)) for _ in range(2)]
    points = rng.normal(0, 30, (n_frames, parts, 3))
    views = [points @ matrix.T + offset for matrix, offset in cameras]
    names = [f"part{p}_{view}" for view in ("top", "bot") for p in range(parts)]
    return np.concatenate(views, axis=1), names, cameras


def test_multiview_pca_loss_is_zero_for_two_views_of_one_3d_point():
    poses, names, cameras = two_affine_views(30, parts=4)
    term = MultiviewPCALoss().fit(names, poses)
    assert term.index.tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    point = np.array([12.0, -40.0, 25.0])
    new = np.concatenate([np.tile(point @ m.T + b, (4, 1)) for m, b in cameras])[None]
    assert term(torch.tensor(new, dtype=torch.float32)).item() < 1e-3
    new[0, 5] += [0.0, 9.0]  # part1 moved 9 px in the bottom view only
    errors = pca_keypoint_errors(term, new)
    assert errors.shape == (1, 8)
    # its 4 stacked numbers leave the 3-D subspace by the move's component along the subspace's normal n
    normal = np.linalg.svd(term.subspace.components.numpy().T)[2][-1]
    assert np.hypot(*errors[0, [1, 5]]) == pytest.approx(9 * abs(normal[3]), rel=1e-3)
    assert np.delete(errors[0], [1, 5]).max() < 1e-3


def test_multiview_views_declared_and_bad_ones_in_one_line():
    poses, names, _ = two_affine_views(30, parts=2)
    term = MultiviewPCALoss(views=[["part0_top", "part0_bot"]]).fit(names, poses)
    assert term.index.tolist() == [[0, 2]]
    errors = pca_keypoint_errors(term, poses[:2])
    assert np.isnan(errors[:, [1, 3]]).all() and np.isfinite(errors[:, [0, 2]]).all()
    with pytest.raises(ConfigError, match="views name paw_bot, not a keypoint"):
        MultiviewPCALoss(views=[["part0_top", "paw_bot"]]).fit(names, poses)
    with pytest.raises(ConfigError, match="no views declared and none found"):
        MultiviewPCALoss().fit(["nose", "tail"], poses[:, :2])


def test_guess_views_pairs_cameras_and_leaves_out_single_view_names(caplog):
    names = ["nose_cam1", "ear_cam1", "nose_cam2", "ear_cam2", "tail_cam1", "left_ear", "right_ear"]
    with caplog.at_level(logging.INFO):
        assert guess_views(names) == [["nose_cam1", "nose_cam2"], ["ear_cam1", "ear_cam2"]]
    assert "views cam1/cam2" in caplog.text and "left out: tail_cam1, left_ear, right_ear" in caplog.text
    assert guess_views(["left_ear", "right_ear", "nose"]) == []


def test_guess_views_on_mirror_mouse():
    path = shared_data("mirror_mouse") / "CollectedData.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with open(path) as file:
        rows = list(csv.reader(file))
    names = list(dict.fromkeys(rows[1][1:]))
    groups = guess_views(names)
    # The seven parts both views show; the obstacles differ (obs_top; obsHigh_bot, obsLow_bot) and are left out.
    assert [group[0].removesuffix("_top") for group in groups] == [
        "paw1LH", "paw2LF", "paw3RF", "paw4RH", "tailBase", "tailMid", "nose",
    ]  # fmt: skip
    assert all(bottom == top.replace("_top", "_bot") for top, bottom in groups)
    labels = np.array([[float(v) if v else math.nan for v in row[1:]] for row in rows[3:]])
    labels = labels.reshape(len(labels), -1, 2)
    term = MultiviewPCALoss().fit(names, labels)
    # the two views of one rig: 3 components hold nearly all of the variance
    assert term.subspace.explained > 0.99


def test_the_terms_are_declared_like_the_loss_group_s():
    """What a `loss` config entry will say once training feeds unlabelled clips: _target_, weight, warm-up, options."""
    from hydra.utils import instantiate

    terms = {
        "temporal": {
            "_target_": "kp.unsupervised_losses.TemporalLoss",
            "weight": 0.5,
            "epsilon": 4.0,
            "warmup_start": 2,
        },
        "pose_pca": {"_target_": "kp.unsupervised_losses.PosePCALoss", "weight": 1.0, "percentile": 95.0},
        "multiview_pca": {"_target_": "kp.unsupervised_losses.MultiviewPCALoss", "views": [["a_top", "a_bot"]]},
    }
    built = {name: instantiate(term) for name, term in terms.items()}
    assert built["temporal"].weight_at(1) == 0 and built["temporal"].weight_at(2) == 0.5
    assert built["pose_pca"].percentile == 95.0 and built["multiview_pca"].views == [["a_top", "a_bot"]]
    assert all(term.requires == ("keypoints",) for term in built.values())
