"""Class-wise non-maximum suppression: the one place detections are thinned (the models' own NMS is off)."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import batched_nms

from detector.detections import Detections


def classwise_nms(
    detections: Detections,
    iou: float,
    score_thresh: float = 0.0,
    class_thresh: np.ndarray | None = None,
    keep_classes: np.ndarray | None = None,
) -> Detections:
    """Filter by class and score, then NMS within each class; the result is sorted by score.

    class_thresh: (num_classes,) per-class minimum scores (overrides score_thresh where larger).
    keep_classes: (num_classes,) bool mask of classes to keep; None keeps all.
    """
    keep = detections.scores >= score_thresh
    if class_thresh is not None:
        keep &= detections.scores >= class_thresh[detections.labels]
    if keep_classes is not None:
        keep &= keep_classes[detections.labels]
    detections = detections[keep]
    if len(detections) == 0:
        return detections
    order = batched_nms(
        torch.from_numpy(detections.boxes),
        torch.from_numpy(detections.scores),
        torch.from_numpy(detections.labels),
        iou,
    ).numpy()
    return detections[order]
