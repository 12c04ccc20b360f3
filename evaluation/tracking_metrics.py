"""Multi-object tracking scores (MOTA, IDF1, identity switches) with py-motmetrics, over per-frame boxes and ids.

Matching is class-agnostic at IoU >= 0.5, as in the MOTChallenge; a box without a confirmed id (-1) is not a
hypothesis. Written over plain arrays so any tracker's output (the JSONL, the pipeline) can be scored. The IoU
distances are torchvision's (motmetrics' own ``iou_matrix`` uses a function NumPy 2 removed).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import motmetrics as mm
import numpy as np
import torch
from torchvision.ops import box_iou

IOU_THRESHOLD = 0.5


@dataclass
class TrackFrame:
    """One frame's objects: ids (N,) int and boxes (N, 4) xyxy pixels."""

    ids: np.ndarray
    boxes: np.ndarray


def iou_distances(truth: np.ndarray, hypotheses: np.ndarray) -> np.ndarray:
    """1 - IoU for every (truth, hypothesis) pair; NaN (no match allowed) below the IoU threshold."""
    truth = torch.as_tensor(np.asarray(truth, np.float32).reshape(-1, 4))
    hypotheses = torch.as_tensor(np.asarray(hypotheses, np.float32).reshape(-1, 4))
    iou = box_iou(truth, hypotheses).numpy().astype(np.float64)
    return np.where(iou >= IOU_THRESHOLD, 1 - iou, np.nan)


def mot_scores(truth: Iterable[TrackFrame], tracked: Iterable[TrackFrame]) -> dict[str, float]:
    """``mota``, ``idf1``, ``switches`` and ``frames`` over frames paired in order."""
    accumulator = mm.MOTAccumulator(auto_id=True)
    frames = 0
    for gt, hyp in zip(truth, tracked, strict=True):
        keep = np.asarray(hyp.ids) >= 0
        distances = iou_distances(gt.boxes, np.asarray(hyp.boxes).reshape(-1, 4)[keep])
        accumulator.update(list(np.asarray(gt.ids)), list(np.asarray(hyp.ids)[keep]), distances)
        frames += 1
    summary = mm.metrics.create().compute(accumulator, metrics=["mota", "idf1", "num_switches"], name="run")
    return {"mota": float(summary["mota"].iloc[0]), "idf1": float(summary["idf1"].iloc[0]),
            "switches": int(summary["num_switches"].iloc[0]), "frames": frames}
