import pytest
import torch
from torch.nn import functional as F

from kp.losses import CountMSE, MaskedMSE, VisibilityBCE


def test_masked_mse_ignores_invisible_keypoints_in_value_and_gradient():
    pred = torch.zeros(2, 3, 4, 4, requires_grad=True)
    target = torch.ones(2, 3, 4, 4)
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    loss = MaskedMSE()({"keypoints": pred}, {"keypoints": target, "keypoint_weights": weights})
    assert loss.item() == pytest.approx(1.0)  # mean over the 3 weighted keypoints only
    loss.backward()
    assert torch.all(pred.grad[weights == 0] == 0)
    assert torch.all(pred.grad[weights == 1] != 0)


def test_masked_mse_does_not_see_garbage_under_zero_weights():
    target = torch.zeros(1, 2, 2)
    weights = torch.tensor([[1.0, 0.0]])
    clean = MaskedMSE()(
        {"keypoints": torch.tensor([[[0.5, 0.5], [0.0, 0.0]]])}, {"keypoints": target, "keypoint_weights": weights}
    )
    garbage = MaskedMSE()(
        {"keypoints": torch.tensor([[[0.5, 0.5], [float("nan"), float("inf")]]], requires_grad=True)},
        {"keypoints": target, "keypoint_weights": weights},
    )
    assert clean.item() == garbage.item() == pytest.approx(0.25)


def test_masked_mse_supervises_every_intermediate_stack():
    stacks = [torch.zeros(1, 2, 3, 3, requires_grad=True) for _ in range(3)]
    outputs = {"keypoints": stacks[-1], "intermediate": stacks[:-1]}
    targets = {"keypoints": torch.ones(1, 2, 3, 3), "keypoint_weights": torch.ones(1, 2)}
    loss = MaskedMSE(intermediate_weight=0.5)(outputs, targets)
    assert loss.item() == pytest.approx(1.0 + 0.5 + 0.5)
    loss.backward()
    assert all(stack.grad.abs().sum() > 0 for stack in stacks)


def test_visibility_bce_and_count_mse_match_torch():
    logits, visible = torch.tensor([[2.0, -1.0]]), torch.tensor([[True, False]])
    assert VisibilityBCE()({"visibility": logits}, {"visible": visible}).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, visible.float()).item()
    )
    assert CountMSE()({"count": torch.tensor([0.5, 0.2])}, {"count": torch.tensor([0.3, 0.2])}).item() == pytest.approx(
        0.02
    )
