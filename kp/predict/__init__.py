"""`kp predict`: inputs (images, folders, globs, videos; sources.py) through a Predictor into predictions.csv, the
DeepLabCut and COCO formats and overlays (writers.py, overlay.py); and the Kaggle submission (submit.py)."""
