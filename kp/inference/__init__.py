"""A trained model ready to predict: checkpoint files (checkpoint.py), the preprocessing of a new image
(preprocess.py), the Predictor with its torch (predictor.py) and ONNX Runtime (onnx.py) runtimes, and kp.load
(load.py)."""
