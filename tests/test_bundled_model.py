"""The bundled driving model on the project's own sample clip: it must find the stop sign and a vehicle."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detector.backend import build_backend
from detector.nms import ClasswiseNms
from detector.weights import BUNDLED_WEIGHTS
from stream.config import load_pipeline_config
from tests.conftest import REPO

VEHICLES = {"car", "truck", "bus"}


@pytest.fixture(scope="module")
def detections_per_frame() -> list[tuple[int, list[str], np.ndarray]]:
    if not BUNDLED_WEIGHTS.exists():
        pytest.skip(f"bundled weights {BUNDLED_WEIGHTS} not present")
    cfg = load_pipeline_config(None, ["model.device=cpu"])  # the default config, as run_stream.py uses it
    backend, nms = build_backend(cfg.model), ClasswiseNms(cfg.nms)
    capture = cv2.VideoCapture(str(REPO / "samples" / "driving_sample.mp4"))
    found, index = [], 0
    while (frame := capture.read())[0]:
        if index % 8 == 0:
            dets = nms(backend(frame[1]))
            found.append((index, dets.names, dets.boxes))
        index += 1
    return found


def matched(sample, found, classes: set[str]) -> int:
    """Frames where a detection of ``classes`` overlaps a drawn object of ``classes`` at IoU >= 0.5."""
    hits = 0
    for index, names, boxes in found:
        truth = [box for name, box in sample.sample_ground_truth(index) if name in classes]
        mine = [box for name, box in zip(names, boxes) if name in classes]
        if truth and mine and box_iou(torch.tensor(np.array(mine)), torch.tensor(truth, dtype=torch.float32)).max() >= 0.5:
            hits += 1
    return hits


def test_bundled_model_finds_the_stop_sign(sample, detections_per_frame):
    assert matched(sample, detections_per_frame, {"stop_sign"}) >= 3


def test_bundled_model_finds_a_vehicle(sample, detections_per_frame):
    assert matched(sample, detections_per_frame, VEHICLES) >= 1
