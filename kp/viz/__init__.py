"""Pictures: predictions against the ground truth (predictions.py), the evaluation report's figures (report.py) and a
look inside a trained network (features.py, `python -m kp.viz.features`)."""

import matplotlib

matplotlib.use("Agg")  # files only: training runs on headless machines

from kp.viz.predictions import plot_predictions  # noqa: E402

__all__ = ["plot_predictions"]
