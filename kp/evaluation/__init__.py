"""Judging a model and its labels: `kp evaluate` (evaluate.py: predict a split, calibrate, report.py and figures.py
write the report) and `kp doctor`, the label doctor (doctor.py)."""
