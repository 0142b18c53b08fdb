"""Pictures: predictions against the ground truth (predictions.py), a dataset as the model sees it (preview.py,
`kp preview`), a look inside a trained network (features.py, `kp features`), predictions over an image or frame
(overlay.py, kp predict's overlays), kp refine's contact sheet (contact_sheet.py) and a keypoint's track raw against
smoothed (trajectory.py, kp smooth's figures)."""

import matplotlib

matplotlib.use("Agg")  # files only: training runs on headless machines

from kp.viz.predictions import plot_predictions  # noqa: E402

__all__ = ["plot_predictions"]
