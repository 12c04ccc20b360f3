"""The class-wise NMS stage: suppression within a class only, thresholds, class filter, and the model's NMS off."""
from __future__ import annotations

import numpy as np
import pytest

from core.detections import Detections
from core.labels import LABEL_IDS
from detector.config import NmsConfig
from detector.models import build_detector
from detector.nms import ClasswiseNms, PipelineNms

CAR, TRUCK, PERSON = LABEL_IDS["car"], LABEL_IDS["truck"], LABEL_IDS["person"]


def dets(*rows) -> Detections:
    """rows of (x1, y1, x2, y2, score, label)."""
    a = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64))


def test_overlapping_boxes_are_suppressed_within_a_class_but_not_across_classes():
    out = ClasswiseNms(NmsConfig(iou=0.5, score_thresh=0.0))(dets(
        (0, 0, 100, 100, 0.9, CAR), (2, 2, 102, 102, 0.8, CAR), (1, 1, 101, 101, 0.7, TRUCK),
        (300, 300, 350, 350, 0.6, CAR),
    ))
    assert out.names == ["car", "truck", "car"]
    np.testing.assert_allclose(out.scores, [0.9, 0.7, 0.6])


def test_iou_threshold_decides_what_counts_as_a_duplicate():
    pair = dets((0, 0, 100, 100, 0.9, CAR), (0, 40, 100, 140, 0.8, CAR))  # IoU 60/140 = 0.43
    assert len(ClasswiseNms(NmsConfig(iou=0.5, score_thresh=0.0))(pair)) == 2
    assert len(ClasswiseNms(NmsConfig(iou=0.4, score_thresh=0.0))(pair)) == 1


def test_global_and_per_class_score_thresholds_and_the_class_filter():
    many = dets((0, 0, 10, 10, 0.45, CAR), (20, 20, 30, 30, 0.45, PERSON), (40, 40, 50, 50, 0.3, CAR),
                (60, 60, 70, 70, 0.9, LABEL_IDS["bus"]))
    stage = ClasswiseNms(NmsConfig(score_thresh=0.4, class_thresh={"person": 0.5}, classes=["car", "person"]))
    assert stage(many).names == ["car"]


def test_keeps_what_torchvision_batched_nms_keeps_on_crowded_frames():
    """The stage shifts classes apart itself (fewer torch calls); its result must stay torchvision's, in order."""
    import torch
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        xy = rng.uniform(0, 1800, (n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + rng.uniform(5, 200, (n, 2)).astype(np.float32)], axis=1)
        crowd = Detections(boxes, rng.uniform(0, 1, n).astype(np.float32), rng.integers(1, 11, n))
        expected = batched_nms(torch.from_numpy(crowd.boxes), torch.from_numpy(crowd.scores),
                               torch.from_numpy(crowd.labels), 0.5).numpy()
        out = ClasswiseNms(NmsConfig(iou=0.5, score_thresh=0.0))(crowd)
        np.testing.assert_array_equal(out.boxes, crowd.boxes[expected])
        np.testing.assert_array_equal(out.labels, crowd.labels[expected])


def test_empty_input_stays_empty():
    assert len(ClasswiseNms(NmsConfig())(Detections())) == 0


@pytest.mark.parametrize("name", ["driving_mobilenet_v2_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_models_leave_the_deciding_to_the_nms_stage(name):
    model = build_detector(name, 11, top_n=50)
    assert model.roi_heads.nms_thresh == 1.0
    assert model.rpn._post_nms_top_n["testing"] == 50 and model.rpn._pre_nms_top_n["testing"] == 50


def test_the_pipeline_keeps_one_box_per_object_but_the_rider_and_the_bicycle() -> None:
    """A lorry seen as bus 0.54 and truck 0.46 (near-identical boxes) becomes one box; a rider over a bicycle
    (overlapping, far from identical) stays two; the evaluate command's class-wise NMS keeps all three."""
    ids = {n: LABEL_IDS[n] for n in ("bus", "truck", "person", "bicycle")}
    dets = Detections([[100, 100, 300, 250], [102, 98, 301, 252], [400, 100, 440, 200], [395, 150, 450, 220]],
                      [0.54, 0.46, 0.9, 0.8], [ids["bus"], ids["truck"], ids["person"], ids["bicycle"]])
    cfg = NmsConfig(score_thresh=0.3)
    assert len(ClasswiseNms(cfg)(dets)) == 4
    kept = PipelineNms(cfg)(dets)
    assert sorted(kept.labels.tolist()) == sorted([ids["bus"], ids["person"], ids["bicycle"]])
    assert list(kept.scores) == sorted(kept.scores, reverse=True)
    assert len(PipelineNms(NmsConfig(score_thresh=0.3, agnostic_iou=1.0))(dets)) == 4  # off


def test_agnostic_suppression_keeps_what_torchvision_nms_keeps() -> None:
    """The numpy greedy pass is NMS: the same boxes as torchvision's on crowded random boxes, in score order."""
    import torch
    from torchvision.ops import nms

    from detector.nms import agnostic_suppression

    rng = np.random.default_rng(1)
    kept = []
    for iou in (0.3, 0.5, 0.8):
        xy = rng.uniform(0, 200, (40, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (40, 2))], 1).astype(np.float32)
        scores = np.sort(rng.uniform(0.4, 1.0, 40))[::-1].astype(np.float32)
        found = Detections(boxes, scores, rng.integers(1, 10, 40))
        expected = np.sort(nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy())
        got = agnostic_suppression(found, iou)
        assert np.array_equal(got.boxes, boxes[expected])
        kept.append(len(got))
    assert kept[0] < kept[1] <= kept[2]  # the crowd really overlaps


def test_classes_one_object_can_be_mistaken_between_are_suppressed_as_one_class() -> None:
    """A car box inside a bus box at IoU 0.79 is one vehicle (the class-wise IoU, 0.5, applies across car, truck
    and bus), but a person over a car at the same overlap is two objects (nms.agnostic_iou, 0.8, applies)."""
    bus = LABEL_IDS["bus"]
    vehicle = dets((100, 100, 170, 143, 0.7, bus), (103, 102, 167, 139, 0.6, CAR))
    assert PipelineNms(NmsConfig(score_thresh=0.3))(vehicle).labels.tolist() == [bus]
    unrelated = dets((100, 100, 170, 143, 0.7, CAR), (103, 102, 167, 139, 0.6, PERSON))
    assert len(PipelineNms(NmsConfig(score_thresh=0.3))(unrelated)) == 2
    assert len(PipelineNms(NmsConfig(score_thresh=0.3, agnostic_iou=1.0))(vehicle)) == 2  # off
