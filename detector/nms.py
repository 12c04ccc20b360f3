"""Class-wise non-maximum suppression: the one place detections are thinned (the models' own NMS is off)."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import nms

from core.detections import Detections
from core.labels import GROUP_IDS, LABEL_IDS, NUM_CLASSES
from detector.config import NmsConfig

GROUP_OF = np.asarray(GROUP_IDS, np.int64)


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
    # torchvision's batched_nms coordinate trick (boxes of each class shifted apart, then one NMS), with the shift in
    # numpy: each torch call hands the GIL over, and behind the pipeline's other threads batched_nms' six calls cost
    # 2.2 ms of CPU a frame against 0.9 for this one (0.13 / 0.08 ms alone); the kept boxes are the same
    boxes = detections.boxes
    shifted = boxes + (detections.labels.astype(boxes.dtype) * (boxes.max() + 1))[:, None]
    order = nms(torch.from_numpy(shifted), torch.from_numpy(detections.scores), iou).numpy()
    return detections[order]


def agnostic_suppression(detections: Detections, iou: float, group_iou: float | None = None) -> Detections:
    """Drop a box that overlaps a higher-scored box of another class by at least ``iou``: one object, two class
    guesses (a lorry as ``bus 0.54`` and ``truck 0.46``). A high ``iou`` keeps objects that merely overlap, such
    as a rider and the bicycle. ``group_iou`` (None: ``iou``) applies instead between classes of one
    `core.labels.CLASS_GROUPS` group, which one object can be mistaken between: there the class-wise NMS IoU
    suits, as for one class (a bus's box and a car box inside it at IoU 0.78 are one object, and the car box
    would otherwise start a second track on it). Expects the class-wise NMS output (sorted by score); keeps
    that order.

    In numpy rather than torchvision's ``nms``: a frame's few dozen boxes need no kernel, and each torch call
    hands the GIL to the pipeline's other threads (see `classwise_nms`)."""
    count = len(detections)
    if count < 2 or iou >= 1.0:
        return detections
    boxes = detections.boxes.astype(np.float64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    corners = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:]) - np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    inter = np.prod(np.clip(corners, 0, None), axis=2)
    overlap = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)
    groups = GROUP_OF[detections.labels]
    limit = np.where(groups[:, None] == groups[None, :], iou if group_iou is None else group_iou, iou)
    keep = np.ones(count, bool)
    for i in range(count):  # greedy, best score first, as NMS
        if keep[i]:
            keep[i + 1:] &= overlap[i, i + 1:] < limit[i, i + 1:]
    return detections[keep]


class ClasswiseNms:
    """The configured class-wise NMS (`NmsConfig`) as one callable; its arrays are built once, not per frame."""

    def __init__(self, cfg: NmsConfig):
        self.iou, self.score_thresh = cfg.iou, cfg.score_thresh
        self.class_thresh = np.zeros(NUM_CLASSES, np.float32)
        for name, thresh in cfg.class_thresh.items():
            self.class_thresh[LABEL_IDS[name]] = thresh
        self.keep = np.zeros(NUM_CLASSES, bool)
        self.keep[[LABEL_IDS[n] for n in cfg.classes]] = True

    def __call__(self, detections: Detections) -> Detections:
        return classwise_nms(detections, self.iou, self.score_thresh, self.class_thresh, self.keep)


class PipelineNms(ClasswiseNms):
    """The pipeline's NMS stage: the class-wise NMS, then `agnostic_suppression` at ``nms.agnostic_iou`` (at
    ``nms.iou`` between classes one object can be mistaken between) so the overlay and the tracker see one box
    per object. The evaluate command scores the class-wise output alone."""

    def __init__(self, cfg: NmsConfig):
        super().__init__(cfg)
        self.agnostic_iou, self.group_iou = cfg.agnostic_iou, min(cfg.iou, cfg.agnostic_iou)

    def __call__(self, detections: Detections) -> Detections:
        return agnostic_suppression(super().__call__(detections), self.agnostic_iou, self.group_iou)
