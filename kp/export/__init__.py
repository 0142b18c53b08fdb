"""`kp export`: the exported graph and its metadata (graph.py), the ONNX and TorchScript writers (export.py), and the
parity and latency report that proves each export right (parity.py)."""
