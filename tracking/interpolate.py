"""Boxes for the frames between two detector frames from both sides: the earlier detections moved forward by flow,
the later ones moved back, matched and blended by how near each side is in time.

Moving the earlier frame's boxes forward alone (what a live source must do) shows on every skipped frame the
objects the detector found a frame or more before, and loses what it would have found there. On files the later
detector frame can be waited for. Scored offline on the held-out clip (teacher labels) with the boxes of a run
detecting every frame, those of the frame before moved forward scored car AP@0.5 3.2 points below the frame's own
at 1080p and 2.7 at 640x360, these blends 0.3 and 0.7 below; placing each forward box where the detector put it on
the frame itself gained only 1.1 of the 3.2: the loss is in which objects are shown, which only the later frame
tells (docs/benchmarks.md "Filling skipped frames from both sides").
"""
from __future__ import annotations

import numpy as np
import supervision as sv

from core.detections import Detections

MATCH_IOU = 0.5  # a forward and a backward box of one class overlapping this much are one object


def match(forward: Detections, backward: Detections) -> list[tuple[int, int]]:
    """Pairs (forward index, backward index) of one object: the same class and IoU >= `MATCH_IOU`, greedily by IoU;
    each box in at most one pair. Not by track id: a track may take a box far from its last (``track.min_iou``
    0.1), and pairing by id blended such boxes into one between two objects (1.3 points of car AP lost on the
    held-out clip at 640x360)."""
    if not len(forward) or not len(backward):
        return []
    iou = sv.box_iou_batch(forward.boxes, backward.boxes)
    iou[forward.labels[:, None] != backward.labels[None, :]] = 0.0
    pairs, used_f, used_b = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = (int(v) for v in np.unravel_index(flat, iou.shape))
        if iou[i, j] < MATCH_IOU:
            break
        if i not in used_f and j not in used_b:
            pairs.append((i, j))
            used_f.add(i)
            used_b.add(j)
    return pairs


def blend(forward: Detections, backward: Detections, later: float) -> Detections:
    """One skipped frame's boxes from the earlier detector frame's (``forward``, moved here) and the later one's
    (``backward``, moved here); ``later`` in (0, 1): how far the frame is from the earlier detector frame towards
    the later one.

    A matched pair becomes one box, corners and score weighted by nearness (``later`` to the backward box), with
    the ids and classes of the nearer side; a box only one side has is kept as it is (an object entering or
    leaving; down-weighting their scores cost AP on the held-out clip).
    """
    pairs = match(forward, backward)
    if not pairs:
        return Detections.merge([forward, backward])
    f, b = (np.array(side) for side in zip(*pairs))
    near = backward[b] if later >= 0.5 else forward[f]
    both = Detections((1 - later) * forward.boxes[f] + later * backward.boxes[b],
                      (1 - later) * forward.scores[f] + later * backward.scores[b], near.labels, near.track_ids,
                      near.track_labels)
    only_f = np.setdiff1d(np.arange(len(forward)), f)
    only_b = np.setdiff1d(np.arange(len(backward)), b)
    return Detections.merge([both, forward[only_f], backward[only_b]])
