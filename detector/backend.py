"""Inference backends behind one protocol: ``backend(frame_bgr) -> Detections`` (driving ids, source pixels).

The NMS stage, the pipeline, evaluation and benchmarks see only `Backend`, so torch and ONNX Runtime (and any
backend added later) are swappable; `build_backend` picks one from the config.
"""
from __future__ import annotations

import dataclasses
import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import numpy as np

from core.config import ConfigError
from core.detections import Detections
from core.labels import LABELS
from detector.config import ModelConfig, NmsConfig
from detector.runtime import SUPPORTED, Machine, device_kind, resolve_runtime

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What every backend offers.

    name: shown in records (``torch``, ``onnx``, ``onnx-int8``); class_map: (num_model_classes,) model class index
    -> driving id (-1: not a driving class); device: where it runs (``str()`` names it in records); precision: what
    the network runs in (``fp32``, ``int8``, ...); runtime: the model config as `build_backend` resolved it (backend, precision, device, workers and threads: never ``auto``),
    which the pipeline sizes itself to and records name.
    """

    name: str
    class_map: np.ndarray
    device: object
    precision: str
    runtime: ModelConfig

    def __call__(self, frame_bgr: np.ndarray) -> Detections:
        """frame_bgr: (H, W, 3) uint8 BGR, as captured; returns candidates before the class-wise NMS stage."""
        ...

    def worker_threads(self) -> AbstractContextManager[None]:
        """Wraps a pipeline inference worker's loop on its own thread (e.g. per-thread intra-op settings)."""
        ...


def build_backend(cfg: ModelConfig, machine: Machine | None = None) -> Backend:
    """The configured backend with its model loaded, after `resolve_runtime` picks backend and precision.

    ONNX Runtime and OpenVINO run ``model.onnx_path`` when given, else the graph exported on first use into the
    cache (`detector.export_cache`). Errors are `WeightsError`/`ConfigError`/`OnnxModelError` one-liners.
    """
    if machine is None:
        from detector.precision_timing import with_measured_speeds
        from detector.runtime import probe_machine

        probed = probe_machine(cfg)
        machine = with_measured_speeds(cfg, probed, lambda timed: build_backend(timed, probed))
    cfg = resolve_runtime(cfg, machine)
    backend = _load(cfg)
    backend.runtime = dataclasses.replace(cfg, precision=backend.precision)  # a graph file decides its precision
    return backend


def export_device(cfg: ModelConfig, graph_precision: str = "fp32") -> str:
    """``cpu`` or ``cuda``: where `check_exported` runs a ``graph_precision`` graph for ``model.device``, asked
    before exporting so a device it cannot run on costs no export. ``auto`` is CUDA when ONNX Runtime can run
    there too, else the CPU. An int8 graph runs on CPUs only (`detector.runtime.SUPPORTED`): ``auto`` picks the
    CPU for it, ``cuda`` is a `ConfigError`."""
    import onnxruntime as ort
    import torch

    device = device_kind(cfg, torch.cuda.is_available())
    if cfg.device == "auto" and "CUDAExecutionProvider" not in ort.get_available_providers():
        device = "cpu"
    if graph_precision in SUPPORTED[("onnx", device)]:
        return device
    if cfg.device == "cuda":
        raise ConfigError(f"a {graph_precision} graph runs on the CPU only (OpenVINO or ONNX Runtime); export it "
                          "with --device cpu, or export fp32 for CUDA")
    return "cpu"


def check_exported(cfg: ModelConfig, path: Path, device: str) -> Backend:
    """The exported graph at ``path`` loaded on ``device`` (`export_device`) by the backend a pipeline with
    ``model.onnx_path`` set to it gets there, and run on one frame, so an export that cannot run where it is meant
    to fails at export time rather than on a stream's first frame. On CUDA that is ONNX Runtime with TensorRT then
    CUDA: the TensorRT engine for the frame's shape is built now and cached (``model.onnx.trt_cache_dir``)."""
    from detector.backend_onnx import read_metadata

    meta = read_metadata(path)
    backend = build_backend(dataclasses.replace(cfg, backend="auto", onnx_path=str(path), device=device))
    backend(np.zeros((meta.min_size, meta.max_size, 3), np.uint8))
    return backend


def _load(cfg: ModelConfig) -> Backend:
    if cfg.backend == "torch":
        from detector.backend_torch import TorchBackend, resolve_device
        from detector.weights import load_model

        model, class_map = load_model(cfg.name, cfg.weights, cfg.top_n, cfg.min_size, cfg.max_size, cfg.score_thresh)
        return TorchBackend(model, class_map, resolve_device(cfg.device), cfg.precision, cfg.threads)
    from detector.export_cache import cached_graph

    graph_precision = "int8" if cfg.precision == "int8" else "fp32"  # bf16 and fp16 are the runtime's choice
    path = Path(cfg.onnx_path) if cfg.onnx_path else cached_graph(cfg, graph_precision)
    if cfg.backend == "onnx":
        from detector.backend_onnx import OnnxBackend

        return OnnxBackend.from_config(cfg, path)
    from detector.backend_openvino import OpenVinoBackend

    return OpenVinoBackend.from_config(cfg, path)


def check_class_filter(class_map: np.ndarray, nms: NmsConfig, model: str) -> list[str]:
    """The NMS class filter against what a model can output; returns the filtered classes it never outputs.

    A filter keeping none of the model's classes would show nothing at all, so it is a `ConfigError`; a partial
    overlap (e.g. the default filter's road signs with a COCO model) is one warning line. Any backend's map works.
    """
    produced = {LABELS[i] for i in np.asarray(class_map) if i > 0}
    if not produced & set(nms.classes):
        raise ConfigError(
            f"'nms.classes' keeps none of the classes model '{model}' outputs ({', '.join(sorted(produced))})"
        )
    unused = sorted({*nms.classes, *nms.class_thresh} - produced)
    if unused:
        log.warning("model '%s' never outputs %s, named in the nms config", model, ", ".join(unused))
    return unused
