"""Target codecs: keypoints <-> what the network is trained to output. The contract is kp.codecs.base.Codec."""

from kp.codecs.base import Codec, flip_test
from kp.codecs.coords import CoordsCodec
from kp.codecs.heatmap import HeatmapCodec, soft_argmax

__all__ = ["Codec", "CoordsCodec", "HeatmapCodec", "flip_test", "soft_argmax"]
