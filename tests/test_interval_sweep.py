"""The interval sweep's choices: the detector phase that tracks the most labelled frames, scoring, the rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.interval_sweep import IntervalPoint, hardest_phase, labelled_frames, recommend, score
from core.labels import LABEL_IDS
from detector.datasets import AnnotatedImage, DatasetError


def test_the_phase_puts_labelled_frames_on_tracker_frames():
    every_fourth = list(range(0, 100, 4))
    assert hardest_phase(2, every_fourth) == 1      # odd detector frames: every labelled frame is tracked
    assert hardest_phase(4, every_fourth) == 1
    assert hardest_phase(6, every_fourth) == 1
    phase = hardest_phase(3, every_fourth)          # k=3 cannot avoid them all: a third land on detector frames
    assert sum((i - phase) % 3 == 0 for i in every_fourth) == min(sum((i - p) % 3 == 0 for i in every_fourth)
                                                                  for p in range(3))


def image(stem: str, boxes) -> AnnotatedImage:
    return AnnotatedImage(Path(f"{stem}.jpg"), 640, 360, np.asarray(boxes, np.float32).reshape(-1, 4),
                          np.full(len(boxes), LABEL_IDS["car"]))


def test_frames_are_found_by_the_number_in_the_file_name_and_scored_there():
    truth = labelled_frames([image("clip_000004", [[10, 10, 50, 50]]), image("clip_000008", [[100, 100, 150, 140]])])
    assert sorted(truth) == [4, 8]
    lines = [{"frame": f, "boxes": b, "labels": ["car"] * len(b), "scores": [0.9] * len(b)}
             for f, b in [(3, [[0, 0, 5, 5]]), (4, [[11, 10, 50, 51]]), (8, [[300, 300, 320, 330]])]]
    car, map50 = score(lines, truth)
    assert car == pytest.approx(0.5) and map50 == pytest.approx(0.5)  # frame 4 found, frame 8 missed
    with pytest.raises(DatasetError, match="no frame number"):
        labelled_frames([image("still", [])])


def test_the_recommendation_is_the_fastest_within_the_allowed_drop():
    def point(k, fps, car):
        return IntervalPoint(k, 0, fps, car, car, 0, 0, 0, 0)

    points = [point(1, 20, 0.60), point(2, 35, 0.59), point(3, 48, 0.575), point(4, 55, 0.55)]
    assert recommend(points, 3.0).interval == 3
    assert recommend(points, 0.5).interval == 1
