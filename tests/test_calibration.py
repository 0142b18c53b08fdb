"""Calibrated uncertainty (kp.calibration): nominal coverage on synthetic residuals, adaptivity, the pooled fallback,
and the calibration travelling inside the checkpoint to kp.load's Predictor."""

import math

import numpy as np
import pytest
import torch

from kp import calibration
from kp.build import build
from kp.inference.load import load
from tests.helpers import TINY_DATA, compose_config


def _residuals(rng, n, k):
    """Errors whose size follows a known per-prediction difficulty: 2-D Gaussian offsets of scale `difficulty`."""
    difficulty = rng.lognormal(0.0, 0.7, size=(n, k))
    errors = difficulty * np.linalg.norm(rng.normal(size=(n, k, 2)), axis=-1)
    return errors, difficulty


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_split_conformal_radius_reaches_its_nominal_coverage(alpha):
    rng = np.random.default_rng(0)
    errors, difficulty = _residuals(rng, 5000, 3)  # coverage s.d. about 0.006
    fitted = calibration.calibrate(errors, difficulty, np.ones_like(errors, bool), alpha=alpha)
    assert fitted.pooled == [False] * 3 and fitted.count == [5000] * 3
    test_errors, test_difficulty = _residuals(rng, 20000, 3)
    radius = fitted.radius(test_difficulty)
    coverage = (test_errors <= radius).mean(0)
    assert np.all(np.abs(coverage - (1 - alpha)) < 0.02), coverage
    # The scale of a Rayleigh(1) residual at 1 - alpha: sqrt(-2 ln alpha).
    assert fitted.scale == pytest.approx([math.sqrt(-2 * math.log(alpha))] * 3, rel=0.06)
    # Adaptive: the radius is proportional to the difficulty, so hard predictions get big circles.
    assert radius[:, 0] / test_difficulty[:, 0] == pytest.approx(np.full(20000, fitted.scale[0]))


def test_a_keypoint_with_few_labels_borrows_the_pooled_scale_and_invisible_points_do_not_count():
    rng = np.random.default_rng(1)
    errors, difficulty = _residuals(rng, 200, 2)
    visible = np.ones_like(errors, bool)
    visible[10:, 1] = False  # keypoint 1: only 10 labelled points, too few for a 90 % quantile of its own
    errors[~visible] = 1e6  # whatever sits under an unlabelled point must not move the scale
    fitted = calibration.calibrate(errors, difficulty, visible, alpha=0.1)
    assert fitted.pooled == [False, True] and fitted.count == [200, 10]
    ratios = np.sort(np.r_[errors[:, 0] / difficulty[:, 0], errors[:10, 1] / difficulty[:10, 1]])
    assert fitted.scale[1] == pytest.approx(ratios[math.ceil(211 * 0.9) - 1])
    assert fitted.scale[0] == pytest.approx(np.sort(errors[:, 0] / difficulty[:, 0])[math.ceil(201 * 0.9) - 1])


def test_too_few_points_give_an_infinite_radius_not_a_false_promise():
    fitted = calibration.calibrate(np.ones((3, 1)), np.ones((3, 1)), np.ones((3, 1), bool), alpha=0.1)
    assert fitted.scale == [math.inf]
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        calibration.calibrate(np.ones((3, 1)), np.ones((3, 1)), np.ones((3, 1), bool), alpha=1.5)


def test_difficulty_grows_with_the_spread_and_with_low_scores_of_the_point_and_its_image():
    spread = torch.tensor([[2.0, 2.0], [2.0, 4.0], [2.0, 2.0]])
    scores = torch.tensor([[0.99, 0.99], [0.99, 0.99], [0.99, 0.1]])
    difficulty = calibration.difficulty(spread, scores)
    sure, unsure = -math.log(0.99), -math.log(0.1)
    assert difficulty.numpy() == pytest.approx(
        np.array(
            [
                [2 * 2 * sure] * 2,
                [2 * 2 * sure, 4 * 2 * sure],
                [2 * (sure + (sure + unsure) / 2), 2 * (unsure + (sure + unsure) / 2)],
            ]
        )
    )
    # A peak above 1 or at 0 (heatmaps are not probabilities) stays finite and positive.
    extreme = calibration.difficulty(torch.ones(1, 2), torch.tensor([[1.3, 0.0]]))
    assert torch.isfinite(extreme).all() and (extreme > 0).all()


def test_a_calibration_fitted_on_another_difficulty_is_not_used():
    """Checkpoints calibrated by an older kp (spread-only difficulty, no "difficulty" field) would get wrong radii:
    they count as uncalibrated, so kp evaluate recalibrates them."""
    fitted = calibration.Calibration(alpha=0.1, flip=False, scale=[2.0], count=[50], pooled=[False])
    stored = fitted.to_dict()
    assert calibration.from_checkpoint({calibration.CHECKPOINT_KEY: {"plain": stored}}, flip=False) == fitted
    old = {key: value for key, value in stored.items() if key != "difficulty"}
    assert calibration.from_checkpoint({calibration.CHECKPOINT_KEY: {"plain": old}}, flip=False) is None


def test_calibration_is_stored_in_the_checkpoint_and_gives_kp_load_a_radius(tmp_path):
    _, module = build(compose_config(*TINY_DATA, "model.backbone.width=4", output_dir=tmp_path))
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, path)
    images = torch.rand(2, 3, 64, 64)
    assert np.isnan(load(path).predict_with_radius(images).radius).all()  # not calibrated: says so, no made-up circle

    fitted = calibration.Calibration(
        alpha=0.1, flip=False, scale=[2.0, 3.0, 1.0, 1.0, 1.0], count=[50] * 5, pooled=[False] * 5
    )
    calibration.store(path, fitted)
    predictor = load(path)
    assert predictor.calibrations == {False: fitted}
    plain = predictor.predict_with_radius(images)
    difficulty = predictor.module.locate_details(images).difficulty.detach().numpy()
    assert plain.radius == pytest.approx(difficulty * np.array(fitted.scale), rel=1e-5)
    # In source pixels: an image shrunk by 2 into the input has radii twice as large in its own pixels.
    half = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    source = predictor.predict_with_radius(images, np.stack([half, half]))
    assert source.radius == pytest.approx(2 * plain.radius, rel=1e-5)
    assert source.keypoints == pytest.approx(2 * plain.keypoints, rel=1e-5)
    assert np.isnan(predictor.predict_with_radius(images, flip=True).radius).all()  # no flip calibration yet
