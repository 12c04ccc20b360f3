"""Metrics: COCO numbers against pycocotools, VOC 11-point vs all-point by hand, ignore regions."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.detections import Detections
from core.labels import LABELS
from evaluation.metrics import GroundTruth, ap_11_point, ap_all_point, evaluate

NAMES = dict(enumerate(LABELS))
CAR = 1


def random_scene(rng: np.random.Generator, classes: tuple[int, ...]) -> tuple[list[Detections], list[GroundTruth]]:
    """Images 200x150: jittered copies of the GT (IoU spread over 0.3-1), duplicates and random false positives."""
    detections, truths = [], []
    for image in range(8):
        n_gt = 0 if image % 4 == 3 else int(rng.integers(1, 6))
        xy = rng.uniform(0, 120, (n_gt, 2))
        gt_boxes = np.hstack([xy, xy + rng.uniform(15, 70, (n_gt, 2))]).astype(np.float32)
        gt_labels = rng.choice(classes, n_gt)
        jitter = rng.normal(0, 6, gt_boxes.shape)
        keep = rng.random(n_gt) < 0.85
        copies = [gt_boxes[keep] + jitter[keep], gt_boxes[:2] + rng.normal(0, 4, gt_boxes[:2].shape)]
        fp_xy = rng.uniform(0, 150, (3, 2))
        fps = np.hstack([fp_xy, fp_xy + rng.uniform(10, 50, (3, 2))])
        boxes = np.vstack([*copies, fps]).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate([gt_labels[keep], gt_labels[:2], rng.choice(classes, 3)])
        detections.append(Detections(boxes, rng.random(len(boxes)), labels))
        truths.append(GroundTruth(gt_boxes, gt_labels))
    return detections, truths


def coco_eval(detections: list[Detections], truths: list[GroundTruth], classes: tuple[int, ...]) -> np.ndarray:
    """pycocotools' precision array [T, R, K] (area 'all', maxDets 100) for the same data."""
    images, annotations, results = [], [], []
    for i, (det, gt) in enumerate(zip(detections, truths)):
        images.append({"id": i, "width": 200, "height": 150})
        for box, label in zip(gt.boxes.tolist(), gt.labels.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label,
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
        for box, score, label in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist()):
            results.append({"image_id": i, "category_id": label, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api = COCO()
        gt_api.dataset = {"images": images, "annotations": annotations,
                          "categories": [{"id": c, "name": NAMES[c]} for c in classes]}
        gt_api.createIndex()
        evaluator = COCOeval(gt_api, gt_api.loadRes(results), "bbox")
        evaluator.params.catIds = list(classes)
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"][:, :, :, 0, 2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_ap_matches_pycocotools(seed: int) -> None:
    classes = (1, 6, 7)
    detections, truths = random_scene(np.random.default_rng(seed), classes)
    precision = coco_eval(detections, truths, classes)
    results = {r.name: r for r in evaluate(detections, truths, NAMES)}
    assert results, "the scene must contain ground truth"
    for k, cls in enumerate(classes):
        if NAMES[cls] not in results:
            assert (precision[:, :, k] == -1).all()
            continue
        ours = results[NAMES[cls]]
        assert ours.ap50_95 == pytest.approx(precision[:, :, k].mean(), abs=1e-3)
        assert ours.ap50_101pt == pytest.approx(precision[0, :, k].mean(), abs=1e-3)
    present = precision[:, :, [k for k, c in enumerate(classes) if NAMES[c] in results]]
    assert np.mean([r.ap50_95 for r in results.values()]) == pytest.approx(present.mean(), abs=1e-3)
    assert 0.05 < present.mean() < 0.95, "the scene should be neither trivial nor hopeless"


def box(x: float, y: float, size: float = 20) -> list[float]:
    return [x, y, x + size, y + size]


def test_voc_11_point_vs_all_point_by_hand() -> None:
    # 3 cars; detections by score: TP (car A), FP (nothing there), TP (car B), FP (duplicate of car A). Car C missed.
    # precision 1, 1/2, 2/3, 2/4; recall 1/3, 1/3, 2/3, 2/3.
    # all-point: envelope 1 over recall (0, 1/3], 2/3 over (1/3, 2/3], 0 after -> 1/3 + 2/9 = 5/9.
    # 11-point: recall >= 0, .1, .2, .3 -> 1 (4 points); >= .4, .5, .6 -> 2/3 (3 points); >= .7 .. 1 -> 0 (4 points)
    #   -> (4 + 2) / 11 = 6/11.
    gt = GroundTruth(np.array([box(0, 0), box(50, 0), box(100, 0)], np.float32), np.array([CAR] * 3))
    det = Detections(np.array([box(1, 1), box(0, 80), box(50, 1), box(0, 1)]), [0.9, 0.8, 0.7, 0.6], [CAR] * 4)
    (result,) = evaluate([det], [gt], NAMES)
    assert result.num_gt == 3 and result.num_det == 4
    assert result.ap50 == pytest.approx(5 / 9)
    assert result.ap50_11pt == pytest.approx(6 / 11)
    recall, precision = np.array([1, 1, 2, 2]) / 3, np.array([1, 1 / 2, 2 / 3, 2 / 4])
    assert ap_all_point(recall, precision) == pytest.approx(5 / 9)
    assert ap_11_point(recall, precision) == pytest.approx(6 / 11)


def test_ignore_region_neither_tp_nor_fp() -> None:
    gt = GroundTruth(np.array([box(0, 0)], np.float32), np.array([CAR]), ignore=np.array([box(100, 0, 50)], np.float32))
    inside = box(110, 10)  # wholly in the ignore region
    half_out = box(145, 10)  # only a quarter of it in the region: a false positive
    det = Detections(np.array([inside, box(1, 1)]), [0.95, 0.9], [CAR, CAR])
    (result,) = evaluate([det], [gt], NAMES)
    assert result.ap50 == pytest.approx(1.0) and result.ap50_95 > 0.5
    assert len(result.curve50.precision) == 1  # the ignored detection is not in the ranking at all
    (without,) = evaluate([det], [GroundTruth(gt.boxes, gt.labels)], NAMES)
    assert without.ap50 == pytest.approx(0.5)  # the same detection counts as FP when there is no region
    det = Detections(np.array([half_out, box(1, 1)]), [0.95, 0.9], [CAR, CAR])
    (partial,) = evaluate([det], [gt], NAMES)
    assert partial.ap50 == pytest.approx(0.5)
