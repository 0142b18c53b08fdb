from kp.data.base import KeypointDataset, KeypointMeta

__all__ = ["KeypointDataset", "KeypointMeta"]
