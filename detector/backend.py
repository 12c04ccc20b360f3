"""Inference backends behind one call: ``backend(frame_bgr) -> Detections`` (driving ids, source pixels).

The NMS stage, overlay, sinks and evaluation see only this interface, so torch and ONNX Runtime are swappable.
"""
from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from detector.config import ConfigError, ModelConfig, NmsConfig
from detector.detections import Detections
from detector.labels import LABEL_IDS, LABELS, NUM_CLASSES
from detector.nms import classwise_nms

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str
    class_map: np.ndarray  # model class index -> driving id (-1: not a driving class)

    def __call__(self, frame_bgr: np.ndarray) -> Detections: ...


def build_backend(cfg: ModelConfig) -> Backend:
    """The configured backend with its model loaded; errors are `WeightsError`/`ConfigError` one-liners."""
    if cfg.backend == "onnx":
        from detector.backend_onnx import OnnxBackend

        return OnnxBackend.from_config(cfg)
    from detector.backend_torch import TorchBackend, resolve_device
    from detector.weights import load_model

    model, class_map = load_model(cfg.name, cfg.weights, cfg.top_n, cfg.min_size, cfg.max_size, cfg.score_thresh)
    return TorchBackend(model, class_map, resolve_device(cfg.device), cfg.fp16, cfg.threads)


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


class NmsStage:
    """The configured class-wise NMS as one callable (arrays are built once, not per frame)."""

    def __init__(self, cfg: NmsConfig):
        self.iou, self.score_thresh = cfg.iou, cfg.score_thresh
        self.class_thresh = np.zeros(NUM_CLASSES, np.float32)
        for name, thresh in cfg.class_thresh.items():
            self.class_thresh[LABEL_IDS[name]] = thresh
        self.keep = np.zeros(NUM_CLASSES, bool)
        self.keep[[LABEL_IDS[n] for n in cfg.classes]] = True

    def __call__(self, detections: Detections) -> Detections:
        return classwise_nms(detections, self.iou, self.score_thresh, self.class_thresh, self.keep)
