"""Tracking and detect-every-k: IDs that hold, boxes on the frames the detector skips, buffers in real time,
the interval schedule, and MOTA/IDF1 floors on the project's own synthetic clip."""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from commands.stream import main as stream_main
from core.config import ConfigError
from core.detections import Detections
from evaluation.tracking_metrics import TrackFrame, mot_scores
from stream.config import PipelineConfig, SourceConfig, load_pipeline_config
from stream.interval import DetectorSchedule
from stream.pipeline import Pipeline
from tests.test_pipeline import FakeLiveSource, SlowBackend, outputs
from tracking.config import TrackConfig
from tracking.tracker import Tracker


def moving_car(i: int) -> Detections:
    x = 20 + 4 * i
    return Detections([[x, 40, x + 50, 80], [300, 200, 330, 260]], [0.9, 0.85], [1, 6])


def test_ids_hold_across_skipped_frames_and_predictions_follow_the_motion():
    tracker = Tracker(TrackConfig(), fps=30.0)
    ids = []
    for i in range(60):
        if i % 3 == 0:
            out = tracker.update(moving_car(i), i / 30)
        else:
            out = tracker.predict(i / 30)
            if i > 3:  # confirmed after two detector frames (track.min_hits)
                assert len(out) == 2 and np.abs(out.boxes - moving_car(i).boxes).max() < 3.0  # within 3 px
        ids.append(tuple(out.track_ids))
    confirmed = ids[3:]
    assert len(set(confirmed)) == 1 and -1 not in confirmed[0] and tracker.tracks_seen == 2
    assert out.labels.tolist() == [1, 6] and out.scores.tolist() == pytest.approx([0.9, 0.85])


def test_predict_leaves_the_tracker_state_alone():
    tracker = Tracker(TrackConfig(), fps=30.0)
    for i in range(4):
        tracker.update(moving_car(i), i / 30)
    before = [t.get_state_bbox().copy() for group in tracker.trackers for t in group.tracks]
    tracker.predict(10 / 30)
    tracker.predict(20 / 30)
    assert all(np.allclose(a, t.get_state_bbox()) for a, t in zip(before, [t for group in tracker.trackers for t in group.tracks]))


def test_repeated_or_backward_timestamps_still_update_without_warnings():
    """A live source can stamp two frames alike (or, after a clock step, earlier): the tracker must still step
    (``trackers`` skips such an update with a UserWarning) and warn nothing, with no process-wide filter."""
    tracker = Tracker(TrackConfig(), fps=30.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, t in enumerate([0.0, 1 / 30, 1 / 30, 1 / 30, 0.5 / 30, 4 / 30]):
            out = tracker.update(moving_car(i), t)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert -1 not in out.track_ids and len(set(out.track_ids)) == 2  # every update counted: both confirmed


@pytest.mark.parametrize("fps", [10.0, 30.0])
def test_a_lost_track_lives_lost_seconds_of_source_time_whatever_the_fps(fps: float):
    tracker = Tracker(TrackConfig(lost_seconds=1.0), fps=fps)
    for i in range(3):
        tracker.update(moving_car(i), i / fps)
    first = tracker.update(moving_car(3), 3 / fps).track_ids[0]
    t0 = 3 / fps
    for i in range(1, int(1.5 * fps)):  # 1.5 s of frames without the car
        tracker.update(Detections([[300, 200, 330, 260]], [0.85], [6]), t0 + i / fps)
    # after 1.5 s the car's track has expired in both cases, so it comes back with a new id
    back = tracker.update(moving_car(3), t0 + 1.5)
    back = tracker.update(moving_car(3), t0 + 1.5 + 1 / fps)
    assert back.track_ids[0] not in (-1, first)


def test_unknown_tracker_or_bad_parameter_names_the_key():
    with pytest.raises(ConfigError, match="'track.tracker' = 'deepsort' is not valid; valid values: bytetrack, sort"):
        load_pipeline_config(None, ["track.tracker=deepsort"])
    with pytest.raises(ConfigError, match="'track.min_iou' must be in"):
        load_pipeline_config(None, ["track.min_iou=2"])
    with pytest.raises(ConfigError, match="needs 'track.enabled'"):
        load_pipeline_config(None, ["model.interval=3", "track.enabled=false"])


def test_fixed_schedule_runs_the_detector_on_every_kth_frame_from_the_phase():
    schedule = DetectorSchedule(3, 6, phase=1, fps=30.0, workers=2, live=False)
    assert [i for i in range(12) if schedule.detect(i)] == [1, 4, 7, 10]
    every = DetectorSchedule(1, 6, phase=0, fps=30.0, workers=2, live=False)
    assert all(every.detect(i) for i in range(10))
    files = DetectorSchedule("auto", 6, phase=0, fps=30.0, workers=1, live=False)
    assert all(files.detect(i) for i in range(10))  # auto adapts live sources only; a file has time


def test_auto_schedule_raises_k_when_inference_is_slow_and_lowers_it_when_fast():
    schedule = DetectorSchedule("auto", 6, phase=0, fps=30.0, workers=1, live=True)
    detected = []
    for i in range(60):
        if schedule.detect(i):
            detected.append(i)
            schedule.observe(0.1 if i < 30 else 0.01)  # 100 ms per frame at 30 FPS: k = ceil(3 * 1.2) = 4
    early = np.diff([i for i in detected if i < 30])
    late = np.diff([i for i in detected if i >= 50])  # the running mean takes a few frames to settle
    assert early[-1] == 4 and late.max() == 1 and schedule.intervals_used >= {1, 4}
    capped = DetectorSchedule("auto", 2, phase=0, fps=30.0, workers=1, live=True)
    capped.observe(1.0)
    assert [i for i in range(8) if capped.detect(i)] == [0, 2, 4, 6]


def run_live(tmp_path: Path, interval: str) -> tuple:
    cfg = PipelineConfig(source=SourceConfig(queue_size=2))
    cfg.output.codec = "mjpg"
    cfg.model.workers = 1  # one slow fake detector, so interval 1 falls behind the source on a machine of any size
    cfg.model.interval = interval if interval == "auto" else int(interval)
    out = outputs(tmp_path / interval)
    record = Pipeline(cfg, FakeLiveSource(150, fps=100.0), "0", SlowBackend(0.03), out, progress=False).run()
    return record, [json.loads(line) for line in out.detections.read_text().splitlines()]


def test_auto_interval_drops_fewer_frames_than_interval_1_and_keeps_latency_bounded(tmp_path: Path):
    fixed, _ = run_live(tmp_path, "1")
    auto, lines = run_live(tmp_path, "auto")
    assert fixed.dropped > 40 and auto.dropped < fixed.dropped / 2
    assert auto.latency["p95"] < 1000 and auto.frames + auto.dropped == 150
    assert all(line["boxes"] for line in lines[10:])  # the tracker fills the frames the detector skips
    assert 0 < auto.detector_frames < auto.frames and "interval=auto" in auto.variant


def sample_run(tmp_path: Path, interval: int) -> list[dict]:
    out = tmp_path / f"k{interval}"
    assert stream_main(["--no-video", "--quiet", "--detections", str(out / "d.jsonl"), f"output.dir={out}",
                        f"output.benchmark_csv={out / 'log.csv'}", f"model.interval={interval}"]) == 0
    return [json.loads(line) for line in (out / "d.jsonl").read_text().splitlines()]


def test_interval_3_on_the_sample_clip_keeps_boxes_ids_and_tracking_quality(tmp_path: Path, sample: ModuleType):
    """Every frame has boxes and ids; the lead car keeps one id for the whole clip; MOTA/IDF1 floors at k=1, 3."""
    scores = {}
    for interval in (1, 3):
        lines = sample_run(tmp_path, interval)
        assert len(lines) == 125 and all(line["boxes"] and "track_ids" in line for line in lines)
        sources = [line["source"] for line in lines]
        assert sources.count("detector") == (125 if interval == 1 else 42)
        cars = [next((t for t, name in zip(line["track_ids"], line["labels"]) if name == "car" and t is not None),
                     None) for line in lines]
        held = [c for c in cars if c is not None]
        assert len(held) >= 30 and len(set(held)) == 1, f"car ids at k={interval}: {sorted(set(held))}"
        truth = [TrackFrame(np.array([i for i, _, _ in sample.sample_tracks(line["frame"])]),
                            np.array([b for _, _, b in sample.sample_tracks(line["frame"])])) for line in lines]
        tracked = [TrackFrame(np.array([-1 if t is None else t for t in line["track_ids"]]), np.array(line["boxes"]))
                   for line in lines]
        scores[interval] = mot_scores(truth, tracked)
    # measured 2026-12-01: k=1 MOTA 0.28, IDF1 0.59; k=3 MOTA 0.30, IDF1 0.60; no switches (the truck and the
    # far traffic light are rarely detected, which caps MOTA); a tracker that loses or swaps ids falls below
    for interval, s in scores.items():
        assert s["mota"] >= 0.2 and s["idf1"] >= 0.5 and s["switches"] <= 1, (interval, s)


def test_a_source_without_fps_warns_that_tracking_assumes_the_fallback(tmp_path: Path, caplog):
    import logging

    cfg = PipelineConfig()
    source = FakeLiveSource(3, fps=30.0)
    source.info = dataclasses.replace(source.info, fps_known=False)
    Pipeline(cfg, source, "0", SlowBackend(0.0), outputs(tmp_path), progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("assume source.fallback_fps = 30" in w for w in warnings)


def test_a_track_keeps_one_class_by_vote_while_labels_keep_the_detectors_guess() -> None:
    """A car misread as a truck for two frames: ``labels`` says so, ``track_labels`` keeps the id a car."""
    from core.labels import LABEL_IDS

    car, truck = LABEL_IDS["car"], LABEL_IDS["truck"]
    tracker = Tracker(TrackConfig(min_hits=1), fps=10.0)
    guesses = [car] * 6 + [truck] * 2 + [car] * 3
    out = []
    for i, label in enumerate(guesses):
        x = 100 + 4 * i
        out.append(tracker.update(Detections([[x, 100, x + 80, 160]], [0.8], [label]), i / 10))
    confirmed = [d for d in out if d.track_ids[0] >= 0]
    assert len({int(d.track_ids[0]) for d in confirmed}) == 1
    assert [int(d.labels[0]) for d in out] == guesses
    assert {int(d.track_labels[0]) for d in confirmed} == {car}
    predicted = tracker.predict(1.15)
    assert predicted.track_labels.tolist() == [car]
    assert set(Detections.merge([predicted, out[-1]]).to_json()["track_labels"]) == {"car"}


def test_a_car_box_inside_a_bus_box_starts_no_second_id_that_later_turns_bus() -> None:
    """seattlestreet1's one class switch, synthetic: the detector sees a bus and, inside its box, a car (IoU 0.79),
    then the car alone, then the bus and a bus-labelled part of it. The car box must not start an id of its own:
    that id took the part's bus votes and its class changed from car to bus. Every id keeps one class."""
    from core.labels import LABEL_IDS
    from detector.config import NmsConfig
    from detector.nms import PipelineNms

    car, bus = LABEL_IDS["car"], LABEL_IDS["bus"]
    whole, inner, part = [100, 100, 170, 143], [103, 102, 167, 139], [103, 101, 141, 140]
    frames = ([([whole], [0.9], [bus])] * 10 + [([whole, inner], [0.7, 0.6], [bus, car])] * 4
              + [([inner], [0.7], [car])] * 6 + [([whole, part], [0.9, 0.6], [bus, bus])] * 30)
    nms, tracker = PipelineNms(NmsConfig(score_thresh=0.3)), Tracker(TrackConfig(), fps=10.0)
    classes: dict[int, set[str]] = {}
    for i, (boxes, scores, labels) in enumerate(frames):
        out = tracker.update(nms(Detections(boxes, scores, labels)), i / 10).to_json()
        for track, label in zip(out["track_ids"], out["track_labels"]):
            if track is not None:
                classes.setdefault(track, set()).add(label)
    assert classes and all(len(names) == 1 for names in classes.values()), classes
    assert {next(iter(names)) for names in classes.values()} == {"bus"}


def test_label_switches_counts_the_ids_whose_voted_class_changes() -> None:
    """bench.label_switches over JSONL records: id 4 goes car -> bus, id 5 keeps truck whatever the detector
    said, unconfirmed boxes (null ids) are no track."""
    from bench.label_switches import id_histories, switched

    records = [{"frame": 0, "track_ids": [4, 5, None], "track_labels": ["car", "truck", "bus"],
                "labels": ["car", "bus", "bus"]},
               {"frame": 1, "track_ids": [4, 5], "track_labels": ["bus", "truck"], "labels": ["bus", "truck"]},
               {"frame": 2, "track_ids": [4], "track_labels": ["bus"], "labels": ["bus"]}]
    histories = id_histories(records)
    assert set(histories) == {4, 5}
    assert list(switched(histories)) == [4]
    assert histories[4].changes() == [(0, "car"), (1, "bus")] and histories[5].detected == ["bus", "truck"]


def test_a_track_never_passes_from_a_car_to_a_person_walking_past_it() -> None:
    """A person box that takes over a parked car's box (the detector now sees the person there) starts a track of
    its own: classes that one object cannot be mistaken between never share an id."""
    from core.labels import LABEL_IDS

    car, person = LABEL_IDS["car"], LABEL_IDS["person"]
    tracker = Tracker(TrackConfig(min_hits=1), fps=10.0)
    ids = []
    for i in range(8):
        label = car if i < 4 else person
        ids.append(int(tracker.update(Detections([[100, 100, 160, 190]], [0.9], [label]), i / 10).track_ids[0]))
    assert ids[1] >= 0 and ids[5] >= 0 and ids[1] != ids[5]
    assert len(set(ids[1:4])) == 1 and len(set(ids[5:])) == 1


def test_a_box_carried_for_its_size_gives_way_to_a_detection_of_the_same_object() -> None:
    """A base-size detector frame (``carry_below``) keeps a far car the frame before had, moved by flow, unless that
    frame's own pass found it: then one box, the detector's, never two for one car."""
    image = np.random.default_rng(0).integers(0, 256, (360, 640, 3), np.uint8)
    far = [300.0, 100.0, 312.0, 108.0]  # 12 x 8 px
    near = [40.0, 200.0, 200.0, 300.0]
    for found_again, expected in ((False, far), (True, [301.0, 100.0, 313.0, 108.0])):
        tracker = Tracker(TrackConfig(), fps=30.0)
        tracker.update(Detections([far, near], [0.9, 0.9], [1, 1]), 0.0, image)
        coarse = [near, expected] if found_again else [near]
        shown = tracker.update(Detections(coarse, [0.9] * len(coarse), [1] * len(coarse)), 1 / 30, image,
                               carry_below=16.0)
        assert len(shown) == 2, shown
        np.testing.assert_allclose(shown.boxes[np.argmin(shown.boxes[:, 2] - shown.boxes[:, 0])], expected, atol=0.5)
