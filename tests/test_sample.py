"""The synthetic driving clip: deterministic frames, ground truth that matches the drawing, a readable video."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from core.labels import LABEL_IDS


def test_render_frame_is_deterministic_and_moves(sample: ModuleType) -> None:
    first = sample.render_frame(10)
    assert first.shape == (360, 640, 3) and first.dtype == np.uint8
    assert np.array_equal(first, sample.render_frame(10))
    assert np.abs(first.astype(int) - sample.render_frame(60)).mean() > 5


@pytest.mark.parametrize("index", [0, 62, 124])
def test_ground_truth_boxes_are_inside_the_frame(sample: ModuleType, index: int) -> None:
    truth = sample.sample_ground_truth(index)
    names = [name for name, _ in truth]
    assert "stop_sign" in names and {"car", "truck"} & set(names)
    for name, (x1, y1, x2, y2) in truth:
        assert name in LABEL_IDS
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360


@pytest.mark.parametrize("index", [20, 124])
def test_stop_sign_box_covers_red_pixels(sample: ModuleType, index: int) -> None:
    frame = sample.render_frame(index).astype(int)
    x1, y1, x2, y2 = (int(round(v)) for v in dict(sample.sample_ground_truth(index))["stop_sign"])
    b, g, r = np.moveaxis(frame[y1:y2, x1:x2], -1, 0)
    red = (r > 120) & (r > 1.8 * g) & (r > 1.8 * b)
    assert red.mean() > 0.5


def test_objects_are_large_enough_to_detect_for_most_of_the_clip(sample: ModuleType) -> None:
    truth = [dict(sample.sample_ground_truth(i)) for i in range(sample.FRAMES)]
    sign_heights = np.array([t["stop_sign"][3] - t["stop_sign"][1] for t in truth])
    car_widths = np.array([t["car"][2] - t["car"][0] for t in truth])
    assert np.mean((sign_heights >= 40) & (sign_heights <= 120)) > 0.5
    assert np.mean((car_widths >= 80) & (car_widths <= 200)) > 0.75


def test_write_sample_writes_a_readable_video(sample: ModuleType, tmp_path: Path) -> None:
    path = sample.write_sample(tmp_path / "clip.mp4", frames=8, fps=25.0)
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    capture.release()
    assert len(frames) == 8
    assert frames[0].shape == (360, 640, 3)
    assert np.abs(frames[3].astype(int) - sample.render_frame(3)).mean() < 6
