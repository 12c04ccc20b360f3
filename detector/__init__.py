"""The detector: model builders, weights, preprocessing, class-wise NMS, backends, ONNX export, datasets.

It knows nothing of threads or streams (see tests/test_layers.py).
"""
