"""The codec contract and test-time flip.

A codec turns keypoints into training targets and network outputs back into keypoints, on whole batches on the
model's device (after MMPose's codecs):
  encode(keypoints B×K×2 pixels, visible B×K bool) -> {"keypoints": target, "keypoint_weights": B×K float}
  decode(outputs: the model's output dict)         -> (keypoints B×K×2 in input pixels, scores B×K)
  flip_back(outputs of the mirrored image, permutation) -> the same outputs as if the network had seen the image
                                                     itself: mirrored back, left/right keypoints swapped
  spread(outputs)                                  -> B×K: how spread out the prediction is, in input pixels (the
                                                     first factor of kp.calibration.difficulty, which scales the
                                                     calibrated uncertainty radius)
`name` is the model's `target` argument, `stride` input pixels per output pixel, `input_size` (height, width).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch


class Codec(Protocol):
    name: str
    stride: int
    height: int
    width: int

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def decode(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def flip_back(self, outputs: dict[str, torch.Tensor], permutation: Sequence[int]) -> dict[str, torch.Tensor]: ...

    def spread(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor: ...


def flip_back_heads(
    outputs: dict[str, torch.Tensor], flipped: dict[str, torch.Tensor], permutation: Sequence[int]
) -> dict[str, torch.Tensor]:
    """The heads every codec shares: visibility logits follow the keypoints, a count does not change."""
    if "visibility" in outputs:
        flipped["visibility"] = outputs["visibility"][:, list(permutation)]
    if "count" in outputs:
        flipped["count"] = outputs["count"]
    return flipped


# Flip-test agreement: the score is multiplied by exp(-d² / 2τ²), d the distance in input pixels between the
# predictions of the image and of its mirror, τ this fraction of the input's longer side (about 2 px at 96²).
AGREEMENT_SCALE = 0.02


def flip_test(
    codec: Codec, outputs: dict[str, torch.Tensor], mirrored: dict[str, torch.Tensor], permutation: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keypoints, scores and disagreement (B×K, input pixels) from the outputs for an image and for its mirror: the
    mirror's outputs are flipped back (pairs swapped) and averaged with the image's before decoding (heatmaps: the
    maps; coordinates: the points); the disagreement is the distance between the two single predictions, and the
    score is the decoded score times their agreement."""
    back = codec.flip_back(mirrored, permutation)
    merged = {
        key: (outputs[key].float() + back[key].float()) / 2
        for key in ("keypoints", "visibility", "count")
        if key in outputs
    }
    keypoints, scores = codec.decode(merged)
    disagreement = (codec.decode(outputs)[0] - codec.decode(back)[0]).norm(dim=-1)
    tau = AGREEMENT_SCALE * max(codec.height, codec.width)
    return keypoints, scores * torch.exp(-(disagreement**2) / (2 * tau**2)), disagreement
