"""Pictures: predictions against the ground truth (predictions.py), a dataset as the model sees it (preview.py,
`kp preview`), a look inside a trained network (features.py, `kp features`), predictions over an image or frame
(overlay.py, kp predict's overlays), kp refine's contact sheet (contact_sheet.py), a keypoint's track raw against
smoothed (trajectory.py, kp smooth's figures), the evaluation report's figures (evaluation.py) and the label
doctor's (doctor.py).

Every figure is a `matplotlib.figure.Figure` drawn straight to a file (Agg canvas): no pyplot, no global backend,
nothing left open, safe on headless machines and in threads."""

from kp.viz.predictions import plot_predictions

__all__ = ["plot_predictions"]
