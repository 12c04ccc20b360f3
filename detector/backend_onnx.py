"""ONNX Runtime inference backend: the graph written by `detector.export`, same contract as `TorchBackend`.

The graph takes the camera frame resized to the size its model sees (uint8 BGR, (H, W, 3); `OnnxMetadata.fit`) and
does TorchBackend's preprocessing itself, so a frame crosses to the device once, at one byte per pixel. Its outputs are model class indices; the class map stored
in the file's metadata turns them into driving ids exactly as TorchBackend's class map does.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from core.config import ConfigError
from core.detections import Detections
from detector.config import ModelConfig, OnnxConfig
from detector.graph import (INPUT_NAME, OUTPUT_NAMES, OnnxMetadata, OnnxModelError, check_frame, first_line,
                            read_metadata)

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# Errors onnxruntime raises for a file it can't load or an input it rejects (none share a base but Exception).
ORT_ERRORS = tuple(
    getattr(ort.capi.onnxruntime_pybind11_state, name)
    for name in (
        "Fail", "InvalidArgument", "InvalidProtobuf", "InvalidGraph", "NoSuchFile", "NotImplemented",
        "RuntimeException", "EPFail",
    )
)


def provider_list(cfg: ModelConfig, available: list[str], cuda_present: bool) -> list[tuple[str, dict]]:
    """Requested providers that can run here, in order, with their options; CPU always closes the list."""
    requested = [CPU_PROVIDER] if cfg.device == "cpu" else cfg.onnx.providers
    usable = [p for p in requested if p in available and (cuda_present or p not in GPU_PROVIDERS)]
    skipped = [p for p in requested if p not in usable]
    if skipped:
        why = f"available: {', '.join(available)}" + ("" if cuda_present else "; no CUDA device")
        log.warning("ONNX Runtime providers skipped (%s): %s", why, ", ".join(skipped))
    if CPU_PROVIDER not in usable:
        usable.append(CPU_PROVIDER)
    return [(p, provider_options(p, cfg.onnx, cfg.precision == "fp16")) for p in usable]


def provider_options(provider: str, cfg: OnnxConfig, fp16: bool) -> dict:
    """TensorRT: fp16 per ``model.precision``, engines and timing cache kept in a folder (builds take minutes)."""
    if provider != "TensorrtExecutionProvider":
        return {}
    Path(cfg.trt_cache_dir).mkdir(parents=True, exist_ok=True)
    return {
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cfg.trt_cache_dir,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cfg.trt_cache_dir,
    }


def open_session(path: Path, cfg: ModelConfig) -> ort.InferenceSession:
    """An InferenceSession with the config's threads, graph optimisation and providers; logs what actually runs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = cfg.onnx.intra_op_threads or cfg.threads
    options.graph_optimization_level = GRAPH_LEVELS[cfg.onnx.graph_optimization]
    options.log_severity_level = 3  # errors only: its warnings (shape ops kept on CPU, ...) bury the line below
    providers = provider_list(cfg, ort.get_available_providers(), cuda_available())
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except ORT_ERRORS as exc:
        raise OnnxModelError(f"ONNX Runtime cannot load '{path}': {first_line(exc)}") from None
    running = session.get_providers()
    not_started = [p for p, _ in providers if p not in running]
    if not_started:
        log.warning("ONNX Runtime could not start %s; running on %s", ", ".join(not_started), running[0])
    if cfg.device == "cuda" and running[0] not in GPU_PROVIDERS:
        raise ConfigError("model.device = 'cuda' but ONNX Runtime runs on the CPU here; use model.device=auto or cpu")
    log.info("ONNX Runtime runs '%s' on %s", path, running[0])
    return session


def cuda_available() -> bool:
    """Whether a CUDA device exists: asking ONNX Runtime for a GPU provider without one fills stdout with errors."""
    return torch.cuda.is_available()


class OnnxBackend:
    """Runs an exported detector in ONNX Runtime; on a GPU provider through IO binding (one upload per frame).

    ``name`` is ``onnx`` for fp32 files and ``onnx-<precision>`` otherwise, so records tell the two apart.
    """

    def __init__(self, session: ort.InferenceSession, meta: OnnxMetadata, io_binding: bool = False):
        self.session, self.meta = session, meta
        self.name = "onnx" if meta.precision == "fp32" else f"onnx-{meta.precision}"
        self.class_map = np.asarray(meta.class_map, np.int64)
        self.device = session.get_providers()[0].removesuffix("ExecutionProvider").lower()
        self.binding = self.bind_outputs() if io_binding else None
        self.precision = meta.precision

    @classmethod
    def from_config(cls, cfg: ModelConfig, path: Path) -> OnnxBackend:
        """Check the file's metadata against the config before starting a session (TensorRT builds are slow)."""
        meta = read_metadata(path)
        meta.check_config(cfg, str(path))
        session = open_session(path, cfg)
        backend = cls(session, meta, io_binding=session.get_providers()[0] in GPU_PROVIDERS)
        backend.precision = "int8" if meta.precision == "int8" else cfg.precision  # the file decides, as in OpenVINO
        return backend

    def bind_outputs(self) -> ort.IOBinding:
        """Outputs go straight to host memory: they are small and the NMS stage reads them there."""
        binding = self.session.io_binding()
        for name in OUTPUT_NAMES:
            binding.bind_output(name, "cpu")
        return binding

    def run(self, frame_bgr: np.ndarray) -> list[np.ndarray]:
        if self.binding is None:
            return self.session.run(OUTPUT_NAMES, {INPUT_NAME: frame_bgr})
        self.binding.bind_cpu_input(INPUT_NAME, frame_bgr)
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()

    def __call__(self, frame_bgr: np.ndarray) -> Detections:
        check_frame(frame_bgr)
        image, back = self.meta.fit(frame_bgr)
        try:
            boxes, scores, labels = self.run(np.ascontiguousarray(image))
        except ORT_ERRORS as exc:
            raise OnnxModelError(f"ONNX Runtime rejected a {frame_bgr.shape} frame: {first_line(exc)}") from None
        return Detections.from_model_output(boxes * back, scores, labels, self.class_map)

    def worker_threads(self) -> contextlib.AbstractContextManager[None]:
        """Nothing per thread: the session's own thread pool (``model.onnx.intra_op_threads``) does the work."""
        return contextlib.nullcontext()
