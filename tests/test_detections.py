"""`Detections`, the one currency: built from any backend's raw output, merged, indexed, written as JSON."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.detections import Detections
from core.labels import LABEL_IDS


def test_from_model_output_maps_classes_and_drops_non_driving_ones():
    class_map = np.array([-1, LABEL_IDS["car"], -1, LABEL_IDS["person"]])
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 5, 5], [2, 2, 8, 8]], dtype=torch.float16)
    dets = Detections.from_model_output(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([1, 2, 3]), class_map)
    assert dets.names == ["car", "person"] and dets.boxes.dtype == np.float32
    assert dets.scores.tolist() == pytest.approx([0.9, 0.7]) and dets.boxes[1].tolist() == [2, 2, 8, 8]
    same = Detections.from_model_output(boxes.numpy(), np.array([0.9, 0.8, 0.7]), np.array([1, 2, 3]), class_map)
    assert same.to_json() == dets.to_json()  # arrays (ONNX Runtime) and tensors (torch) give one result


def test_from_model_output_of_nothing_is_empty():
    empty = Detections.from_model_output(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.arange(11))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)


def test_merge_concatenates_in_order_and_of_nothing_is_empty():
    a = Detections([[0, 0, 1, 1]], [0.5], [1])
    b = Detections([[2, 2, 3, 3], [4, 4, 5, 5]], [0.9, 0.1], [6, 7])
    merged = Detections.merge([a, Detections(), b])
    assert len(merged) == 3 and merged.labels.tolist() == [1, 6, 7]
    assert merged.boxes[2].tolist() == [4, 4, 5, 5] and merged.scores.tolist() == pytest.approx([0.5, 0.9, 0.1])
    assert len(Detections.merge([])) == 0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        Detections([[0, 0, 1, 1]], [0.5, 0.6], [1])
