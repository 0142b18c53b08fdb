"""Pictures: predictions against the ground truth (predictions.py), a dataset as the model sees it (preview.py,
`kp preview`) and a look inside a trained network (features.py, `kp features`)."""

import matplotlib

matplotlib.use("Agg")  # files only: training runs on headless machines

from kp.viz.predictions import plot_predictions  # noqa: E402

__all__ = ["plot_predictions"]
