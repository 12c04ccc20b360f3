"""What the benchmark and tune commands offer, in a module that imports nothing heavy: the commands check their
arguments (and config) against it before torch is loaded."""
from __future__ import annotations

# name[-precision]: -int8 is the statically quantized export (`detector.export.quantize_int8`), -fp16 runs on CUDA
# (on a CPU it falls back to fp32 with a warning); auto is the default choice (`bench.benchmark.backend_config`)
BACKENDS = ("auto", "torch", "torch-fp16", "torch-bf16", "onnx", "onnx-fp16", "onnx-int8", "openvino",
            "openvino-bf16", "openvino-int8")

# The RPN top-N values the tuner sweeps unless told otherwise
SWEEP_TOP_N = (10, 25, 50, 100, 150, 300, 1000)
