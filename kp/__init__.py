"""kp: a Lightning + Hydra experiment framework for image keypoint detection."""
