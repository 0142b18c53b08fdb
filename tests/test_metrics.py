import math

import pytest
import torch

from kp.metrics import NME, PCK, KeypointRMSE, pair_distance

# Two images, three keypoints. Errors (pixels): image 0 -> 3-4-5 triangle (5), 1, 0; image 1 -> 2, invisible, 10.
TARGET = torch.tensor([[[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]], [[0.0, 0.0], [5.0, 5.0], [40.0, 40.0]]])
PRED = torch.tensor([[[13.0, 14.0], [21.0, 20.0], [30.0, 30.0]], [[2.0, 0.0], [99.0, 99.0], [40.0, 50.0]]])
VISIBLE = torch.tensor([[True, True, True], [True, False, True]])
NORM = torch.tensor([100.0, 50.0])


def test_rmse_is_per_coordinate_over_visible_keypoints():
    metric = KeypointRMSE(3)
    metric.update(PRED, TARGET, VISIBLE, NORM)
    result = metric.compute()
    # squared errors: 25, 1, 0, 4, 100 over 5 keypoints × 2 coordinates
    assert result["overall"].item() == pytest.approx(math.sqrt(130 / 10))
    assert result["per_keypoint"].tolist() == pytest.approx(
        [math.sqrt((25 + 4) / 4), math.sqrt(1 / 2), math.sqrt(100 / 4)]
    )


def test_nme_divides_each_error_by_its_sample_length():
    metric = NME(3)
    metric.update(PRED, TARGET, VISIBLE, NORM)
    result = metric.compute()
    assert result["overall"].item() == pytest.approx((5 / 100 + 1 / 100 + 0 + 2 / 50 + 10 / 50) / 5)
    assert result["per_keypoint"].tolist() == pytest.approx([(0.05 + 0.04) / 2, 0.01, (0 + 0.2) / 2])


def test_pck_counts_errors_within_threshold_times_length():
    metric = PCK(3, threshold=0.05)  # thresholds: 5 px for image 0, 2.5 px for image 1
    metric.update(PRED, TARGET, VISIBLE, NORM)
    result = metric.compute()
    assert result["overall"].item() == pytest.approx(4 / 5)  # 5<=5, 1, 0, 2<=2.5 correct; 10 > 2.5 wrong
    assert result["per_keypoint"].tolist() == pytest.approx([1.0, 1.0, 0.5])


def test_metrics_accumulate_over_batches_and_skip_samples_without_a_length():
    metric = PCK(3, threshold=0.05)
    metric.update(PRED[:1], TARGET[:1], VISIBLE[:1], NORM[:1])
    metric.update(PRED[1:], TARGET[1:], VISIBLE[1:], torch.tensor([float("nan")]))
    assert metric.compute()["overall"].item() == pytest.approx(1.0)  # only image 0 counted


def test_pair_distance_is_nan_when_the_pair_is_not_visible():
    distance = pair_distance(TARGET, VISIBLE, (0, 1))
    assert distance[0].item() == pytest.approx(math.hypot(10, 10))
    assert math.isnan(distance[1].item())
