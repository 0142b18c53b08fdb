"""The pose priors every run carries (kp.unsupervised_losses.fit_pose_priors, kp.build): fitted on the training
labels, stored in the checkpoint, read back by kp.load with no data at hand, absent with a reason (never an error),
and the error signal in source pixels (Predictor.pose_prior_errors)."""

import io
import json
import logging

import numpy as np
import pytest
import torch

from kp import geometry
from kp.build import build
from kp.data.unlabelled import input_pixel_poses
from kp.inference.load import load
from kp.unsupervised_losses import NO_PRIORS, PosePCALoss, fit_pose_priors, load_pose_priors, pca_keypoint_errors
from tests.helpers import TINY_DATA, compose_config
from tests.test_unsupervised_losses import poses_in_a_subspace, two_affine_views


def test_the_priors_round_trip_through_a_checkpoint_file_and_json():
    poses, names, cameras = two_affine_views(40, parts=3)
    states = fit_pose_priors(names, poses)
    assert set(states) == {"pose_pca", "multiview_pca"} and not any("absent" in s for s in states.values())
    fitted, _ = load_pose_priors(states)
    new = poses[:5] + np.random.default_rng(3).normal(0, 2, poses[:5].shape)
    for route in ("checkpoint", "json"):
        if route == "checkpoint":  # kp.load reads checkpoints with weights_only=True: plain containers only
            buffer = io.BytesIO()
            torch.save({"kp": {"pose_priors": states}}, buffer)
            buffer.seek(0)
            back = torch.load(buffer, weights_only=True)["kp"]["pose_priors"]
        else:  # an ONNX file's metadata
            back = json.loads(json.dumps(states))
        terms, absent = load_pose_priors(back)
        assert absent == {} and terms["multiview_pca"].index.tolist() == [[0, 3], [1, 4], [2, 5]]
        for name, term in terms.items():
            np.testing.assert_array_equal(pca_keypoint_errors(term, new), pca_keypoint_errors(fitted[name], new))
            assert term.subspace.epsilon == fitted[name].subspace.epsilon


def test_a_loss_with_its_own_pca_term_stores_that_fit_not_a_default_one():
    poses, names, _ = two_affine_views(40, parts=3)
    noisy = poses + np.random.default_rng(4).normal(0, 1, poses.shape)
    own = PosePCALoss(percentile=50.0).fit(names, noisy)
    states = fit_pose_priors(names, noisy, [own])
    assert states["pose_pca"] == own.state()
    assert states["pose_pca"]["epsilon"] < PosePCALoss().fit(names, noisy).subspace.epsilon  # the 50th, not the 99th
    assert "views" in states["multiview_pca"]  # the other prior: fitted with the defaults


def test_priors_that_cannot_be_fitted_are_absent_with_one_line_each(caplog):
    poses, _, _ = poses_in_a_subspace(20)
    poses[:10, 1] = np.nan  # 10 complete frames, a PCA of 6 keypoints needs 12
    names = [f"k{i}" for i in range(6)]
    with caplog.at_level(logging.INFO, logger="kp.unsupervised_losses"):
        states = fit_pose_priors(names, poses)
    assert states["pose_pca"]["absent"].startswith("10 of 20 labelled frames are complete")
    assert states["multiview_pca"]["absent"].startswith("no views in the keypoint names")
    said = [r.getMessage() for r in caplog.records if "not stored in the checkpoint" in r.getMessage()]
    assert len(said) == 2 and all("\n" not in line for line in said)
    terms, absent = load_pose_priors(states)
    assert terms == {} and absent == {name: state["absent"] for name, state in states.items()}
    # a checkpoint from before kp stored them: absent, said why, no error
    assert load_pose_priors(None) == ({}, {"pose_pca": NO_PRIORS, "multiview_pca": NO_PRIORS})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A model built on the synthetic data (5 keypoints, no views), saved as kp train saves its checkpoint."""
    folder = tmp_path_factory.mktemp("priors")
    cfg = compose_config(*TINY_DATA, "model=simple_cnn", output_dir=folder)
    datamodule, module = build(cfg)
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, folder / "model.ckpt")
    return datamodule, module, folder


def test_build_fits_the_priors_of_every_run_and_kp_load_reads_them_from_the_checkpoint(built):
    datamodule, module, folder = built
    assert "pose_pca" not in module.losses  # a supervised run: the priors do not come from its loss
    predictor = load(folder / "model.ckpt")
    assert set(predictor.pose_priors) == {"pose_pca"}
    assert predictor.pose_priors_absent["multiview_pca"].startswith("no views in the keypoint names")
    # the prior is the PCA of the training split's labels in the model's input pixels: those lie in it up to epsilon
    labels = input_pixel_poses(datamodule.splits["train"], module.input_size)
    complete = labels[np.isfinite(labels).all(axis=(1, 2))]
    own = predictor.pose_prior_errors(complete)["pose_pca"]
    epsilon = predictor.pose_priors["pose_pca"].subspace.epsilon
    assert np.percentile(own, 99) == pytest.approx(epsilon, rel=1e-3)
    # a keypoint moved off a pose that lies in the subspace carries the error, the others far less
    term = predictor.pose_priors["pose_pca"]
    inside = term.subspace.mean.numpy().reshape(1, -1, 2).copy()
    assert predictor.pose_prior_errors(inside)["pose_pca"].max() < 1e-3
    inside[0, 2] += [9.0, -12.0]
    moved = predictor.pose_prior_errors(inside)["pose_pca"][0]
    assert moved.argmax() == 2 and moved[2] > 2 * np.delete(moved, 2).max()


def test_the_signal_is_in_source_pixels_through_the_letterbox(built):
    _, module, folder = built
    predictor = load(folder / "model.ckpt")
    rng = np.random.default_rng(0)
    inputs = predictor.pose_priors["pose_pca"].subspace.mean.numpy().reshape(1, -1, 2) + rng.normal(0, 4, (3, 5, 2))
    # frames twice the input's size, letterboxed into it: source -> input halves lengths and shifts
    affines = np.stack([np.array([[0.5, 0, 3.0], [0, 0.5, -7.0]])] * 3)
    source = np.stack([geometry.apply(geometry.invert(a), k) for a, k in zip(affines, inputs)])
    in_input = predictor.pose_prior_errors(inputs)["pose_pca"]
    in_source = predictor.pose_prior_errors(source, affines)["pose_pca"]
    np.testing.assert_allclose(in_source, 2 * in_input, rtol=1e-5)


def test_a_checkpoint_from_before_the_priors_loads_without_them(built):
    _, module, folder = built
    spec = {key: value for key, value in module.spec.items() if key != "pose_priors"}
    torch.save({"state_dict": module.state_dict(), "kp": spec}, folder / "old.ckpt")
    predictor = load(folder / "old.ckpt")
    assert predictor.pose_priors == {} and predictor.pose_priors_absent["pose_pca"] == NO_PRIORS
    assert predictor.pose_prior_errors(np.zeros((2, 5, 2))) == {}
