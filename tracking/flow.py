"""Median-flow box propagation: move boxes from one frame to the next by sparse optical flow on their points.

Detect-every-k needs boxes on the frames the detector skips. A constant-velocity (Kalman) guess lags turning and
braking cars; the image itself says where each box went (Deep Feature Flow, Zhu et al. 2017: run the detector on
key frames only and propagate by flow in between). Per box this is Kalal et al.'s Median Flow (2010): a grid of
points inside the box, pyramidal Lucas-Kanade forward and backward, the points whose forward-backward error is
small (at most the box's median and `FB_MAX_PX`) kept, the box translated by their median displacement and
scaled by the median ratio of their pairwise distances, and clipped to the frame. Median Flow's NCC patch check
is left out: it needs a patch per point (a Python loop over hundreds of points a frame); the forward-backward
check and the medians carry the robustness.

Hand-written because no maintained library does median-flow propagation of arbitrary boxes: OpenCV's MedianFlow
tracker follows one object per instance from its own first box, and lives in the legacy contrib module.

All boxes of a frame go through one `cv2.calcOpticalFlowPyrLK` call each way, on a grey image downscaled to
`SHORT_SIDE` pixels on its short side, so the cost hardly depends on the resolution: per frame, measured with
``python -m bench.flow_cost`` (medians of 50 frames, 2026-12-03, on a 2-core AMD EPYC that another job was using,
hence the ranges over runs): 640x360 0.1 ms preparing the grey image + 7-9 ms moving 5 boxes (12-31 ms for 20);
1920x1080 1-4 ms preparing + the same moving. The held-out clip averages 4.6 boxes a frame; its pipeline's track
stage took 9-13 ms a frame at k=3 against about 1 ms with ``kalman``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)
SHORT_SIDE = 360        # flow runs on a grey image this many pixels on its short side (never upscaled)
GRID = 6                # GRID x GRID points per box: on the held-out clip's labelled frames, boxes moved from the
# frame before scored car AP@0.5 0.606 / 0.593 at 1080p / 640x360 with 6, 0.603 / 0.591 with 8 (and 10 and 12
# about the same), with 56% of 8's points to follow (bench.flow_cost)
MARGIN = 0.1            # the grid leaves this fraction of the box's width and height free on each side
FB_MAX_PX = 1.0         # forward-backward error (pixels of the flow image) above which a point is unreliable
MIN_POINTS = 10         # a box with fewer reliable points is not moved (``ok`` False)
MIN_PAIR_PX = 2.0       # point pairs closer than this (flow pixels) do not vote on the scale
# 9x9 windows, 3 pyramid levels (motions up to about 30 flow pixels a frame): 7x7 to 15x15 windows gave the same
# AP on seattlestreet1 (the tuning clip, whose labels train the model), and 15x15 costs 3x as much as 11x11 here
LK_PARAMS = dict(winSize=(9, 9), maxLevel=3,
                 criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))


@dataclass
class FlowImage:
    """A frame prepared for flow: grey, downscaled by ``scale`` (flow pixels per frame pixel) from the frame's
    ``size`` (width, height)."""

    grey: np.ndarray
    scale: float
    size: tuple[int, int]


def prepare(image: np.ndarray, short_side: int = SHORT_SIDE) -> FlowImage:
    """``image`` (H, W, 3) BGR uint8 as a grey image of ``short_side`` pixels on its short side (or its own size
    when smaller): flow on a 1080p frame costs what it does at 360p, and 360p keeps the texture of a car."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # before resizing: one channel to resize, not three
    scale = min(1.0, short_side / min(grey.shape))
    if scale < 1.0:
        size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return FlowImage(grey, scale, (image.shape[1], image.shape[0]))


def grid_points(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """GRID x GRID points per box (flow pixels), inside the box less MARGIN and inside the image; and whether the
    box kept a visible area to put them in. Returns (N, GRID * GRID, 2) float32 and (N,) bool."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    x1 = np.clip(boxes[:, 0] + MARGIN * w, 0, width - 1)
    x2 = np.clip(boxes[:, 2] - MARGIN * w, 0, width - 1)
    y1 = np.clip(boxes[:, 1] + MARGIN * h, 0, height - 1)
    y2 = np.clip(boxes[:, 3] - MARGIN * h, 0, height - 1)
    steps = np.linspace(0.0, 1.0, GRID, dtype=np.float32)
    xs = x1[:, None] + (x2 - x1)[:, None] * steps  # (N, GRID)
    ys = y1[:, None] + (y2 - y1)[:, None] * steps
    points = np.stack(np.broadcast_arrays(xs[:, None, :], ys[:, :, None]), axis=-1).reshape(len(boxes), -1, 2)
    visible = (x2 - x1 >= MIN_PAIR_PX) & (y2 - y1 >= MIN_PAIR_PX)
    return points.astype(np.float32), visible


PAIRS = np.triu_indices(GRID * GRID, k=1)  # every pair of a box's grid points, for the scale vote


def nanmedian_rows(values: np.ndarray) -> np.ndarray:
    """The median of each row's non-NaN values (NaN for a row with none). By sorting (NaN sorts last): numpy's
    nanmedian took longer on these small rows than the per-box loop it replaces."""
    ordered = np.sort(values, axis=1)
    count = (~np.isnan(values)).sum(axis=1)
    rows = np.arange(len(values))
    low, high = np.maximum((count - 1) // 2, 0), np.minimum(count // 2, values.shape[1] - 1)
    return np.where(count > 0, (ordered[rows, low] + ordered[rows, high]) / 2, np.nan)


def propagate(previous: FlowImage, current: FlowImage, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` (N, 4) xyxy in frame pixels of ``previous``, moved to ``current`` by median flow.

    Returns the moved boxes (N, 4) float32 and ``ok`` (N,) bool; a box with fewer than MIN_POINTS reliable points
    (texture-less, occluded, outside the image) comes back unchanged with ``ok`` False, for the caller to choose
    a fallback (the tracker uses the Kalman prediction). All boxes at once (NaN marks the points a box does not
    use): per box in Python this cost 6.6 ms a 1080p frame of 14 boxes, two thirds of it outside the flow itself.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    moved, ok = boxes.copy(), np.zeros(len(boxes), bool)
    if not len(boxes):
        return moved, ok
    if previous.grey.shape != current.grey.shape:
        log.debug("frame size changed: boxes not moved")
        return moved, ok
    height, width = current.grey.shape
    points, visible = grid_points(boxes * previous.scale, width, height)
    start = points.reshape(-1, 1, 2)
    ahead, status, _ = cv2.calcOpticalFlowPyrLK(previous.grey, current.grey, start, None, **LK_PARAMS)
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(current.grey, previous.grey, ahead, None, **LK_PARAMS)
    error = np.linalg.norm(back - start, axis=-1).reshape(len(boxes), -1)
    reliable = ((status.ravel() == 1) & (status_back.ravel() == 1)).reshape(len(boxes), -1) & (error <= FB_MAX_PX)
    ahead = ahead.reshape(len(boxes), -1, 2)
    # with enough reliable points, only those whose forward-backward error is at most the box's median vote
    median_error = nanmedian_rows(np.where(reliable, error, np.nan))
    enough = reliable.sum(axis=1) >= MIN_POINTS
    keep = reliable & (~enough[:, None] | (error <= median_error[:, None]))
    ok = visible & (keep.sum(axis=1) >= MIN_POINTS)
    if not ok.any():
        return np.clip(moved, 0, np.array(current.size * 2, np.float32)), ok
    before, after, keep = points[ok], ahead[ok], keep[ok]
    shift = np.stack([nanmedian_rows(np.where(keep, after[..., axis] - before[..., axis], np.nan))
                      for axis in (0, 1)], axis=1)
    # scale: the median ratio of pairwise point distances after / before, over pairs of kept points far enough apart
    i, j = PAIRS
    d0 = np.linalg.norm(before[:, i] - before[:, j], axis=-1)
    d1 = np.linalg.norm(after[:, i] - after[:, j], axis=-1)
    votes = keep[:, i] & keep[:, j] & (d0 >= MIN_PAIR_PX)
    scale = nanmedian_rows(np.where(votes, d1 / np.maximum(d0, 1e-6), np.nan))
    scale = np.where(votes.any(axis=1), scale, 1.0)[:, None, None]
    # scale about the grid's centre, which moves by the median shift (the grid is the box's visible part)
    centre = ((before.min(axis=1) + before.max(axis=1)) / 2 / previous.scale)[:, None, :]
    corners = boxes[ok].reshape(-1, 2, 2)
    moved[ok] = (centre + shift[:, None, :] / previous.scale + scale * (corners - centre)).reshape(-1, 4)
    # in the frame, as the detector's boxes are: a car leaving the frame grows past its edge otherwise (on the
    # held-out clip that alone cost 5 points of car AP two frames after a detection)
    return np.clip(moved, 0, np.array(current.size * 2, np.float32)), ok
