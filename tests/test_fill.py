"""Skipped frames of a file filled from both sides (``track.fill``, `tracking.interpolate`): the earlier detector
frame's boxes moved forward and the later one's moved back, blended by nearness; an object the later detector
frame finds shows on the skipped frames before it, frames still leave in order, and the skipped frames after the
last detector frame are written at the end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError
from core.detections import Detections
from core.labels import LABEL_IDS
from stream.config import PipelineConfig, load_pipeline_config
from stream.pipeline import Outputs, Pipeline
from tests.test_flow import FRAMES, PatchSource, iou, patch_box, patch_frame
from tests.test_pipeline import SlowBackend
from tracking.config import TrackConfig
from tracking.interpolate import blend
from tracking.tracker import Tracker

CAR, PERSON = LABEL_IDS["car"], LABEL_IDS["person"]


def test_a_matched_pair_is_blended_by_nearness_and_one_sided_boxes_are_kept():
    forward = Detections([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.7], [CAR, CAR], [3, 4], [CAR, CAR])
    backward = Detections([[2, 0, 12, 10], [50, 50, 60, 60], [100, 100, 110, 130]], [0.6, 0.9, 0.5],
                          [CAR, PERSON, PERSON], [3, 9, 8], [CAR, PERSON, PERSON])
    out = blend(forward, backward, 0.25)
    order = np.argsort(out.boxes[:, 0] * 1000 + out.labels)
    out = out[order]
    np.testing.assert_allclose(out.boxes[0], [0.5, 0, 10.5, 10])  # a quarter of the way to the later box
    assert out.scores[0] == pytest.approx(0.75) and out.track_ids[0] == 3
    # the car and the person at (50, 50) are not one object: both kept, as the person entering is
    assert sorted(zip(out.labels[1:].tolist(), out.track_ids[1:].tolist())) == [(CAR, 4), (PERSON, 8), (PERSON, 9)]


def test_the_nearer_side_gives_the_ids_and_classes():
    forward = Detections([[0, 0, 10, 10]], [0.8], [CAR], [3], [CAR])
    backward = Detections([[0, 0, 10, 10]], [0.6], [CAR], [5], [LABEL_IDS["truck"]])
    assert blend(forward, backward, 0.75).track_ids.tolist() == [5]
    assert blend(forward, backward, 0.75).track_labels.tolist() == [LABEL_IDS["truck"]]
    assert blend(forward, backward, 0.4).track_ids.tolist() == [3]


def inner_box(i: int) -> np.ndarray:
    """A box inside the textured patch (a second object riding on it), in frame ``i``'s pixels."""
    box = patch_box(i)
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + 0.2 * w, box[1] + 0.2 * h, box[0] + 0.5 * w, box[1] + 0.6 * h], np.float32)


def test_the_tracker_fills_skipped_frames_from_both_detector_frames():
    tracker = Tracker(TrackConfig(), 30.0)
    frames = [patch_frame(i) for i in range(10, 14)]
    tracker.update(Detections([patch_box(10)], [0.9], [CAR]), 10 / 30, frames[0])
    forward = [tracker.predict(i / 30, frames[i - 10]) for i in (11, 12)]
    later = tracker.update(Detections([patch_box(13), inner_box(13)], [0.9, 0.8], [CAR, PERSON]), 13 / 30, frames[3])
    filled = tracker.fill(later, frames[3], [(forward[0], frames[1], 1 / 3), (forward[1], frames[2], 2 / 3)])
    for i, found in zip((11, 12), filled):
        car, person = found[found.labels == CAR], found[found.labels == PERSON]
        assert len(car) == 1 and iou(car.boxes[0], patch_box(i)) >= 0.95, (i, car.boxes)
        # the person the later frame found is on the frames before it, moved back with the patch
        assert len(person) == 1 and iou(person.boxes[0], inner_box(i)) >= 0.9, (i, person.boxes)


class LateObjectBackend(SlowBackend):
    """Finds the patch on every frame and the object riding on it from frame 20 on."""

    def __init__(self):
        super().__init__(0.0)

    def __call__(self, image: np.ndarray) -> Detections:
        i = int(image[0, 0, 0])
        if i < 20:
            return Detections([patch_box(i)], [0.9], [CAR])
        return Detections([patch_box(i), inner_box(i)], [0.9, 0.8], [CAR, PERSON])


@pytest.mark.parametrize("fill", ["auto", "forward"])
def test_a_file_shows_an_object_on_the_skipped_frame_before_the_detector_frame_that_finds_it(tmp_path: Path, fill):
    cfg = PipelineConfig()
    cfg.model.workers, cfg.model.interval, cfg.track.fill = 1, 2, fill
    out = Outputs(None, tmp_path / "det.jsonl")
    record = Pipeline(cfg, PatchSource(), "patch.mp4", LateObjectBackend(), out, progress=False).run()
    lines = [json.loads(line) for line in out.detections.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(FRAMES)) and record.frames == FRAMES
    assert [line["source"] for line in lines] == ["detector", "tracker"] * (FRAMES // 2)
    before = lines[19]  # skipped; the detector finds the person on frame 20
    assert ("person" in before["labels"]) == (fill == "auto"), before
    # the last frame, skipped after the last detector frame, is written at the end with the boxes moved forward
    assert sorted(lines[-1]["labels"]) == ["car", "person"]
    car = [b for b, label in zip(lines[-1]["boxes"], lines[-1]["labels"]) if label == "car"]
    assert iou(np.array(car[0]), patch_box(FRAMES - 1)) >= 0.95


def test_bad_fill_names_the_key():
    with pytest.raises(ConfigError, match="'track.fill' = 'both' is not valid; valid values: auto, forward"):
        load_pipeline_config(None, ["track.fill=both"])
    assert load_pipeline_config(None, []).track.fill == "auto"
