"""IoU-based detection metrics: per-class AP (VOC all-point, VOC 11-point, COCO 101-point) and mAP.

Matching follows pycocotools (greedy by score, best still-unmatched ground truth at IoU >= t, ties by stable
order); a detection that matches no ground truth but lies inside an ignore region (intersection over its own
area >= t) counts as neither true nor false positive. Written here because pycocotools has no VOC AP and no
ignore regions for KITTI's DontCare; tests check the COCO numbers against pycocotools.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import box_area, box_iou

from core.detections import Detections

COCO_IOUS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass
class GroundTruth:
    """Labelled boxes of one image: boxes (N, 4) xyxy, labels (N,), ignore (M, 4) regions."""

    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


@dataclass
class ClassCurve:
    """Ranked detections of one class at one IoU: cumulative precision/recall and the three APs."""

    num_gt: int
    scores: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    ap_voc: float
    ap_voc11: float
    ap_101pt: float


def ap_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the monotone (right-max) precision envelope."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def ap_11_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 AP: mean of the best precision at recall >= 0, 0.1, ..., 1.0."""
    points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.linspace(0, 1, 11)]
    return float(np.mean(points))


def ap_101_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO AP: envelope precision sampled at 101 recall points (pycocotools' accumulate)."""
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.sum(envelope[idx[idx < len(envelope)]]) / len(RECALL_POINTS))


def match_image(det: Detections, gt: GroundTruth, cls: int, ious: np.ndarray, max_dets: int):
    """Per IoU threshold: (scores, is_tp, is_ignored) of class ``cls`` detections in one image, and its GT count."""
    d_idx = np.where(det.labels == cls)[0]
    d_idx = d_idx[np.argsort(-det.scores[d_idx], kind="mergesort")][:max_dets]
    g_boxes = torch.from_numpy(gt.boxes[gt.labels == cls])
    d_boxes = torch.from_numpy(det.boxes[d_idx])
    iou = box_iou(d_boxes, g_boxes).numpy() if len(g_boxes) and len(d_boxes) else np.zeros((len(d_idx), len(g_boxes)))
    if len(gt.ignore) and len(d_boxes):
        ignore = torch.from_numpy(gt.ignore)
        lt = torch.max(d_boxes[:, None, :2], ignore[None, :, :2])
        rb = torch.min(d_boxes[:, None, 2:], ignore[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=2)
        ioa = (inter / box_area(d_boxes)[:, None].clamp(min=1e-9)).max(dim=1).values.numpy()
    else:
        ioa = np.zeros(len(d_idx))
    tps = np.zeros((len(ious), len(d_idx)), bool)
    ignored = np.zeros((len(ious), len(d_idx)), bool)
    for t, thr in enumerate(ious):
        taken = np.zeros(len(g_boxes), bool)
        for k in range(len(d_idx)):
            cand = np.where(~taken & (iou[k] >= thr))[0] if iou.shape[1] else np.zeros(0, int)
            if len(cand):
                taken[cand[np.argmax(iou[k, cand])]] = True
                tps[t, k] = True
            elif ioa[k] >= thr:
                ignored[t, k] = True
    return det.scores[d_idx], tps, ignored, len(g_boxes)


def class_curves(
    detections: list[Detections], truths: list[GroundTruth], cls: int,
    ious: np.ndarray = COCO_IOUS, max_dets: int = 100,
) -> list[ClassCurve]:
    """One `ClassCurve` per IoU threshold for class ``cls`` over the whole dataset."""
    parts = [match_image(d, g, cls, ious, max_dets) for d, g in zip(detections, truths, strict=True)]
    num_gt = sum(p[3] for p in parts)
    scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    curves = []
    for t in range(len(ious)):
        tps = np.concatenate([p[1][t] for p in parts])[order] if parts else np.zeros(0, bool)
        ign = np.concatenate([p[2][t] for p in parts])[order] if parts else np.zeros(0, bool)
        tps, kept_scores = tps[~ign], scores[order][~ign]
        tp = np.cumsum(tps)
        fp = np.cumsum(~tps)
        recall = tp / max(num_gt, 1)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        curves.append(ClassCurve(
            num_gt, kept_scores, precision, recall,
            ap_all_point(recall, precision), ap_11_point(recall, precision), ap_101_point(recall, precision),
        ))
    return curves


@dataclass
class ClassResult:
    """Per-class numbers of one evaluation: AP@0.5 three ways (VOC all-point, VOC 11-point, COCO 101-point) and
    COCO's AP@[.5:.95] (the 101-point AP averaged over IoU 0.5, 0.55, ..., 0.95)."""

    name: str
    num_gt: int
    num_det: int
    ap50: float
    ap50_11pt: float
    ap50_95: float
    ap50_101pt: float
    curve50: ClassCurve


def evaluate(
    detections: list[Detections], truths: list[GroundTruth], class_names: dict[int, str], max_dets: int = 100,
) -> list[ClassResult]:
    """Per-class results for every class that has ground truth in ``truths``."""
    results = []
    present = set(np.concatenate([g.labels for g in truths]).tolist()) if truths else set()
    for cls in sorted(present):
        curves = class_curves(detections, truths, cls, COCO_IOUS, max_dets)
        results.append(ClassResult(
            class_names[cls], curves[0].num_gt, int(sum((d.labels == cls).sum() for d in detections)),
            curves[0].ap_voc, curves[0].ap_voc11, float(np.mean([c.ap_101pt for c in curves])),
            curves[0].ap_101pt, curves[0],
        ))
    return results
