from kp.models.net import KeypointNet

__all__ = ["KeypointNet"]
