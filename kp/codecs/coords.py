"""Direct coordinate regression targets: pixel coordinates normalised to [-1, 1] of the input image.

Convention (the same as F.grid_sample with align_corners=False): -1 and +1 are the outer edges of the image, so the
centre of pixel 0 is at (2*0 + 1)/W - 1 and x_norm = (2x + 1)/W - 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kp.codecs.base import flip_back_heads


class CoordsCodec:
    name = "coords"
    stride = 1

    def __init__(self, input_size: tuple[int, int]):
        self.height, self.width = input_size

    def _size(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.width, self.height], dtype=like.dtype, device=like.device)

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor) -> dict[str, torch.Tensor]:
        normalised = (2 * keypoints + 1) / self._size(keypoints) - 1
        return {"keypoints": normalised, "keypoint_weights": visible.to(keypoints.dtype)}

    def decode(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        normalised = outputs["keypoints"].float()
        keypoints = ((normalised + 1) * self._size(normalised) - 1) / 2
        if "visibility" in outputs:
            scores = outputs["visibility"].float().sigmoid()
        else:
            scores = torch.ones(keypoints.shape[:2], device=keypoints.device)
        return keypoints, scores

    def flip_back(self, outputs: dict[str, torch.Tensor], permutation: Sequence[int]) -> dict[str, torch.Tensor]:
        # x_norm = (2x + 1)/W - 1 is odd under the mirror x -> W - 1 - x: only its sign changes.
        keypoints = outputs["keypoints"][:, list(permutation)].clone()
        keypoints[..., 0] = -keypoints[..., 0]
        return flip_back_heads(outputs, {"keypoints": keypoints}, permutation)

    def spread(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """A regressed point carries no spread of its own: 1 px everywhere (only flip disagreement adapts it)."""
        return torch.ones(outputs["keypoints"].shape[:2], device=outputs["keypoints"].device)
