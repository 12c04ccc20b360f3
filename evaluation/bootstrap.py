"""How far an AP@0.5 can be trusted: bootstrap intervals over the images of a dataset, for one model's per-class AP
and for the difference between two models on the same images (a paired bootstrap, as in Efron & Tibshirani ch. 14).

A val set of 150 frames with 10 stop signs gives an AP that moves by several points between two equally good
models; these intervals say how much (`interval` of `resampled_aps`, or of two models' difference). Every
resample draws the dataset's images with replacement; an image drawn k times counts k times, so the detections
never need re-ranking: the ranked true/false positives are re-weighted (exactly the AP of the resampled dataset,
see `resampled_ap`). Hand-written because no maintained library bootstraps detection AP (pycocotools and
torchmetrics give point estimates only).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.detections import Detections
from evaluation.metrics import GroundTruth, match_image

DEFAULT_RESAMPLES = 1000
CELLS = 4_000_000  # resamples are scored in chunks of (resamples, detections) matrices about this large


@dataclass
class ClassMatches:
    """One class's detections over a dataset at IoU 0.5, ranked by score as AP ranks them.

    Args:
        image: (D,) index of each detection's image.
        tp: (D,) whether each detection is a true positive (ignored detections are left out).
        gt: (I,) ground-truth boxes of the class in each image.
    """

    image: np.ndarray
    tp: np.ndarray
    gt: np.ndarray


def class_matches(detections: Sequence[Detections], truths: Sequence[GroundTruth], cls: int,
                  max_dets: int = 100) -> ClassMatches:
    """The ranked matches `evaluation.metrics.class_curves` scores at IoU 0.5, with each detection's image."""
    parts = [match_image(d, g, cls, np.array([0.5]), max_dets) for d, g in zip(detections, truths, strict=True)]
    scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    image = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)]) if parts else np.zeros(0, int)
    tp = np.concatenate([p[1][0] for p in parts]) if parts else np.zeros(0, bool)
    ignored = np.concatenate([p[2][0] for p in parts]) if parts else np.zeros(0, bool)
    order = np.argsort(-scores, kind="mergesort")
    order = order[~ignored[order]]
    return ClassMatches(image[order], tp[order], np.array([p[3] for p in parts]))


def resample_weights(num_images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, num_images): how many times each resample draws each image (with replacement)."""
    if num_images == 0:
        return np.zeros((resamples, 0), int)
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1 / num_images), size=resamples)


def resampled_ap(matches: ClassMatches, weights: np.ndarray) -> np.ndarray:
    """VOC all-point AP@0.5 of every resample in ``weights`` (R, I); NaN where a resample drew none of the class.

    Equal to the AP of the resampled dataset built out (an image drawn k times, k copies of its detections and
    boxes): the copies of a detection would sit next to each other in the ranking, and within such a run the
    precision envelope is that of its last copy. With all weights 1 it is the dataset's own AP
    (`evaluation.metrics.ap_all_point`).
    """
    out = np.full(len(weights), np.nan)
    step = max(1, CELLS // max(len(matches.tp), 1))
    for start in range(0, len(weights), step):
        w = weights[start:start + step].astype(np.float64)
        num_gt = w @ matches.gt
        drawn = w[:, matches.image]  # (R, D)
        tp = np.cumsum(drawn * matches.tp, axis=1)
        fp = np.cumsum(drawn * ~matches.tp, axis=1)
        recall = tp / np.maximum(num_gt, 1)[:, None]
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        rows = len(w)
        mrec = np.hstack([np.zeros((rows, 1)), recall, np.ones((rows, 1))])
        mpre = np.hstack([np.zeros((rows, 1)), precision, np.zeros((rows, 1))])
        envelope = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
        ap = np.sum(np.diff(mrec, axis=1) * envelope[:, 1:], axis=1)
        out[start:start + rows] = np.where(num_gt > 0, ap, np.nan)
    return out


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``values``, NaNs (resamples without the class) left out."""
    kept = values[~np.isnan(values)]
    if not len(kept):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(kept, [tail, 100 - tail])
    return float(low), float(high)


def resampled_aps(detections: Sequence[Detections], truths: Sequence[GroundTruth], classes: Sequence[int],
                  resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[int, np.ndarray]:
    """Per class, its AP@0.5 on each of ``resamples`` resamples of the images, (R,). The resamples depend only on
    the number of images, ``resamples`` and ``seed``, so two models' arrays over the same images are paired: their
    difference, resample by resample, is the bootstrap of the AP difference (what the images share cancels out)."""
    weights = resample_weights(len(truths), resamples, seed)
    return {c: resampled_ap(class_matches(detections, truths, c), weights) for c in classes}
