"""OpenVINO inference backend: the graph written by `detector.export`, same contract as the other backends.

OpenVINO reads the ONNX file directly. On a CPU with bf16 (AVX512-BF16 or AMX) it can run the network in bf16
(``model.precision=bf16``), which the measurements in docs/benchmarks.md put at about twice fp32 on such CPUs. An int8
file (static QDQ quantization, `detector.export.quantize_int8`) runs its quantized ops with int8 kernels and the
rest in fp32. With the
throughput hint it keeps one inference stream per pipeline worker: each worker thread owns an infer request, so
``model.workers`` frames are in flight at once and the pipeline's runner still delivers them in frame order.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import numpy as np
import openvino as ov

from core.detections import Detections
from detector.graph import OUTPUT_NAMES, OnnxMetadata, OnnxModelError, check_frame, read_metadata
from detector.config import ModelConfig

log = logging.getLogger(__name__)
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the ops between the QDQ pairs
WARMUP_FRAME = (240, 320, 3)


def compile_properties(cfg: ModelConfig, precision: str) -> dict[str, str]:
    """OpenVINO CPU properties for ``cfg``: the precision hint, the performance hint, a stream per pipeline worker
    under the throughput hint, and ``threads`` per worker."""
    properties = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": cfg.openvino.hint.upper()}
    if cfg.openvino.hint == "throughput":
        properties["NUM_STREAMS"] = str(cfg.workers)
    if cfg.threads:
        properties["INFERENCE_NUM_THREADS"] = str(cfg.threads * cfg.workers)
    return properties


class OpenVinoBackend:
    """Runs an exported detector with OpenVINO on the CPU; ``name`` is ``openvino`` or ``openvino-<precision>``."""

    def __init__(self, compiled: ov.CompiledModel, meta: OnnxMetadata, precision: str):
        self.compiled, self.meta, self.precision = compiled, meta, precision
        self.name = "openvino" if precision == "fp32" else f"openvino-{precision}"
        self.class_map = np.asarray(meta.class_map, np.int64)
        self.device = "cpu"
        self.outputs = [compiled.output(name) for name in OUTPUT_NAMES]
        self._local = threading.local()

    @classmethod
    def from_config(cls, cfg: ModelConfig, path: Path) -> OpenVinoBackend:
        """Check the file's metadata against the config, then compile it for the CPU with the config's hints."""
        meta = read_metadata(path)
        meta.check_config(cfg, str(path))
        precision = "int8" if meta.precision == "int8" else cfg.precision  # the file decides, as for ONNX Runtime
        if precision not in PRECISION_HINTS:
            raise OnnxModelError(f"OpenVINO runs fp32, bf16 or int8 here, not {precision}")
        try:
            compiled = ov.Core().compile_model(str(path), "CPU", compile_properties(cfg, precision))
        except RuntimeError as exc:
            raise OnnxModelError(f"OpenVINO cannot compile '{path}': {str(exc).strip().splitlines()[0]}") from None
        log.info("OpenVINO runs '%s' on the CPU in %s, %s hint", path, precision, cfg.openvino.hint)
        backend = cls(compiled, meta, precision)
        # One frame on this thread before pipeline workers run: two threads making the binding's first input copy
        # at once can deadlock (seen with model.workers=2 under load: one holds a C++ static initialiser of
        # _pyopenvino and waits for the GIL, the other holds the GIL and waits for the initialiser).
        backend(np.zeros(WARMUP_FRAME, np.uint8))
        return backend

    def worker_threads(self) -> contextlib.AbstractContextManager[None]:
        """Nothing per thread: each thread's infer request is made on its first frame."""
        return contextlib.nullcontext()

    def _request(self) -> ov.InferRequest:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def __call__(self, frame_bgr: np.ndarray) -> Detections:
        check_frame(frame_bgr)
        image, back = self.meta.fit(frame_bgr)
        try:
            result = self._request().infer({0: np.ascontiguousarray(image)})
        except RuntimeError as exc:
            raise OnnxModelError(f"OpenVINO rejected a {frame_bgr.shape} frame: {str(exc).splitlines()[0]}") from None
        boxes, scores, labels = (result[output] for output in self.outputs)
        return Detections.from_model_output(boxes * back, scores, labels, self.class_map)
