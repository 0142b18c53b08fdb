"""Target codecs: keypoints <-> what the network is trained to output, after MMPose's codec contract.

Every codec works on whole batches on the model's device:
  encode(keypoints B×K×2 pixels, visible B×K bool) -> {"keypoints": target tensor, "keypoint_weights": B×K float}
  decode(outputs: the model's output dict)         -> (keypoints B×K×2 pixels, scores B×K)
and has `name` (the model's `target` argument) and `stride` (input pixels per output pixel).
"""

from kp.codecs.coords import CoordsCodec
from kp.codecs.heatmap import HeatmapCodec

__all__ = ["CoordsCodec", "HeatmapCodec"]
