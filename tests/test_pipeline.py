"""The pipeline with fake sources and backends: drop-oldest for live sources, errors, stop, HUD."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time

import cv2
import numpy as np
import pytest

from core.detections import Detections
from stream.config import PipelineConfig, SourceConfig
from stream.frames import Frame
from stream.pipeline import Outputs, Pipeline
from stream.sources import VideoInfo
from stream.sinks import SinkBase
from stream.stages import Stage, StageFailed


class FakeLiveSource:
    """A camera at ``fps`` that never waits for the pipeline."""

    skipped = reconnects = 0
    gap_seconds = 0.0

    def __init__(self, frames: int, fps: float = 200.0, size=(64, 48), live: bool = True):
        self.frames = frames
        self.info = VideoInfo(size, fps, None if live else frames, live)
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()

    def __iter__(self):
        (w, h), fps = self.info.size, self.info.fps
        for i in range(self.frames):
            if self.stopped.is_set():
                return
            time.sleep(1 / fps)
            yield Frame(i, i / fps, time.perf_counter(), np.zeros((h, w, 3), np.uint8))


class FakeFileSource(FakeLiveSource):
    def __init__(self, frames: int):
        super().__init__(frames, fps=10_000.0, live=False)


class SlowBackend:
    name = "fake"
    device = "cpu"
    class_map = np.arange(11)
    worker_threads = staticmethod(contextlib.nullcontext)

    def __init__(self, seconds: float, fail_at: int | None = None):
        self.seconds, self.fail_at, self.calls = seconds, fail_at, 0

    def __call__(self, image: np.ndarray) -> Detections:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("model exploded")
        time.sleep(self.seconds)
        return Detections([[2, 2, 20, 20]], [0.9], [1])


def outputs(tmp_path) -> Outputs:
    return Outputs(tmp_path / "out.avi", tmp_path / "det.jsonl", tmp_path / "b.json", tmp_path / "b.csv")


def config(queue_size: int = 3, policy: str = "auto") -> PipelineConfig:
    cfg = PipelineConfig(source=SourceConfig(queue_size=queue_size, policy=policy))
    cfg.output.codec = "mjpg"
    cfg.model.workers = 1  # one slow fake detector, so it falls behind the source on a machine of any size
    cfg.model.interval = 1  # every frame to the detector, so a live source drops frames (auto would skip them)
    return cfg


def jsonl_frames(path) -> list[int]:
    return [json.loads(line)["frame"] for line in path.read_text().splitlines()]


def test_live_source_drops_oldest_with_a_slow_detector_and_keeps_latency_bounded(tmp_path):
    out = outputs(tmp_path)
    pipeline = Pipeline(config(queue_size=2), FakeLiveSource(150), "0", SlowBackend(0.02), out, progress=False)
    record = pipeline.run()
    assert pipeline.policy == "latest"
    assert record.dropped > 0 and record.dropped == pipeline.stats.queue_stats()["capture"]["dropped"]
    assert record.frames + record.dropped == 150
    assert pipeline.stats.queue_stats()["capture"]["max_depth"] <= 2 + 1
    # latency is bounded by the queues (a few detector periods), not by how far behind the camera we are
    assert record.latency["p95"] < 20 * 5 * 2 + 200
    indices = jsonl_frames(out.detections)
    assert indices == sorted(indices) and len(indices) == record.frames


def test_file_source_is_lossless_with_a_slow_detector(tmp_path):
    out = outputs(tmp_path)
    record = Pipeline(config(queue_size=2), FakeFileSource(40), "clip.mp4", SlowBackend(0.005), out,
                      progress=False).run()
    assert record.dropped == 0 and record.frames == 40
    assert jsonl_frames(out.detections) == list(range(40))
    assert set(record.stages) == {"capture", "inference", "nms", "track", "render", "sink"}


def test_forcing_lossless_on_a_live_source_drops_nothing(tmp_path):
    record = Pipeline(config(policy="lossless"), FakeLiveSource(30), "0", SlowBackend(0.01), outputs(tmp_path),
                      progress=False).run()
    assert record.dropped == 0 and record.frames == 30


def test_a_failing_stage_stops_the_run_and_keeps_what_was_written(tmp_path):
    out = outputs(tmp_path)
    pipeline = Pipeline(config(), FakeFileSource(1000), "clip.mp4", SlowBackend(0.001, fail_at=20), out,
                        progress=False)
    started = time.perf_counter()
    with pytest.raises(StageFailed, match="stage 'inference' failed: RuntimeError: model exploded"):
        pipeline.run()
    assert time.perf_counter() - started < 5.0
    assert not pipeline.alive()
    assert jsonl_frames(out.detections) == list(range(len(jsonl_frames(out.detections))))
    assert len(jsonl_frames(out.detections)) <= 19


def test_request_stop_drains_frames_in_flight_and_finalises_outputs(tmp_path):
    import cv2

    out = outputs(tmp_path)
    pipeline = Pipeline(config(), FakeLiveSource(10_000, fps=100), "0", SlowBackend(0.01), out, progress=False)
    threading.Timer(0.5, pipeline.request_stop).start()
    record = pipeline.run()
    assert 5 < record.frames < 10_000
    assert len(jsonl_frames(out.detections)) == record.frames
    capture = cv2.VideoCapture(str(out.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == record.frames


def test_hud_stats_report_per_stage_times_and_drops(tmp_path):
    pipeline = Pipeline(config(queue_size=1), FakeLiveSource(60), "0", SlowBackend(0.02), outputs(tmp_path),
                        progress=False)
    pipeline.run()
    stats = pipeline.stats.hud()
    assert stats.stage_ms["inference"] >= 15
    assert stats.dropped == pipeline.stats.dropped > 0
    assert stats.fps > 0


def test_a_stage_appended_to_the_list_runs_on_every_written_frame(tmp_path):
    """Adding a stage is one entry in ``Pipeline.stages``: the runner wires its queue, timing and end of stream."""
    out = outputs(tmp_path)
    pipeline = Pipeline(config(), FakeFileSource(25), "clip.mp4", SlowBackend(0.0), out, progress=False)
    counted = []
    pipeline.stages.append(Stage("count", lambda frame: counted.append(frame.index) or frame))
    record = pipeline.run()
    assert counted == jsonl_frames(out.detections) == list(range(25))
    assert list(record.stages) == ["capture", "inference", "nms", "track", "render", "sink", "count"]
    assert record.stages["count"]["p50"] >= 0 and "sink" in record.queues


@pytest.mark.parametrize("video", [True, False])
def test_the_overlay_is_drawn_only_when_something_shows_it(tmp_path, video):
    """--no-video (and no window) draws nothing: the detections log is the same, the CPU is left to inference."""
    out = outputs(tmp_path)
    if not video:
        out.video = None
    pipeline = Pipeline(config(), FakeFileSource(5), "clip.mp4", SlowBackend(0.0), out, progress=False)
    seen = []
    pipeline.stages.append(Stage("look", lambda frame: seen.append(frame.annotated is not None) or frame))
    pipeline.run()
    assert seen == [video] * 5
    assert jsonl_frames(out.detections) == list(range(5))


def test_a_stage_inserted_before_the_sink_changes_what_is_written(tmp_path):
    """A stage between NMS and render (where a tracker goes) sees and may change every frame's detections."""
    out = outputs(tmp_path)
    pipeline = Pipeline(config(), FakeFileSource(10), "clip.mp4", SlowBackend(0.0), out, progress=False)

    def keep_none(frame):
        frame.detections = frame.detections[np.zeros(len(frame.detections), bool)]
        return frame

    names = [s.name for s in pipeline.stages]
    pipeline.stages.insert(names.index("nms") + 1, Stage("filter", keep_none))
    pipeline.run()
    lines = [json.loads(line) for line in out.detections.read_text().splitlines()]
    assert len(lines) == 10 and all(line["boxes"] == [] for line in lines)


class CountsCsv(SinkBase):
    """A new output for the test below: one CSV row of per-class box counts per written frame."""

    def __init__(self, path):
        self.path, self.file = path, None

    def open(self) -> None:
        self.file = self.path.open("w", newline="")
        self.file.write("source,frame,boxes\n")

    def write(self, frame) -> None:
        self.file.write(f"{frame.source_id},{frame.index},{len(frame.detections)}\n")

    def close(self) -> None:
        self.file.close()


def test_a_new_output_is_one_sink_class_and_one_line_where_the_sinks_are_assembled(tmp_path):
    out = outputs(tmp_path)
    out.video = None
    pipeline = Pipeline(config(), FakeFileSource(12), "clip.mp4", SlowBackend(0.0), out, progress=False)
    pipeline.sinks.append(CountsCsv(tmp_path / "counts.csv"))  # the one line
    record = pipeline.run()
    rows = (tmp_path / "counts.csv").read_text().splitlines()
    detections = [json.loads(line) for line in out.detections.read_text().splitlines()]
    assert rows[0] == "source,frame,boxes" and len(rows) == 1 + record.frames == 13
    assert rows[1:] == [f"clip,{d['frame']},{len(d['boxes'])}" for d in detections]
    assert not pipeline.annotate  # a sink that draws nothing asks for no overlay


class SizeRecordingBackend(SlowBackend):
    """Finds a near car wherever it looks, and a speed-limit sign and a far car (30 x 20 px in a 1080p frame) only
    at more than 1000 px wide, as small objects are found only at the policy's full size; each box at a fixed
    place relative to the image it is given."""

    def __init__(self):
        super().__init__(0.0)
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        self.sizes.append((width, height))
        boxes, labels = [[0.25, 0.5, 0.5, 0.8]], [1]
        if width > 1000:
            boxes += [[0.8, 0.2, 0.83, 0.25], [0.6, 0.3, 0.6 + 30 / 1920, 0.3 + 20 / 1080]]
            labels += [9, 1]  # speed_limit, a far car
        return Detections(np.array(boxes) * [width, height, width, height], [0.9] * len(labels), labels)


class TexturedFileSource(FakeFileSource):
    """A still textured scene (flow has points to follow) as a file of ``frames`` frames at ``size``."""

    def __init__(self, frames: int, size: tuple[int, int]):
        super().__init__(frames)
        self.info = VideoInfo(size, 30.0, frames, False)
        self.image = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)

    def __iter__(self):
        for i in range(self.frames):
            yield Frame(i, i / 30, time.perf_counter(), self.image.copy())


@pytest.mark.parametrize("motion", ["flow", "kalman"])
def test_hd_frames_run_the_full_size_every_nth_detector_frame_and_carry_signs_between(tmp_path, motion):
    """On a 1080p file the default ``interval: auto`` detects every 2nd frame, every 3rd detector frame at the
    size the backend picks (the frame as it is) and the others shrunk to the base size, boxes mapped back to frame
    pixels; the sign, found at the full size only, keeps its box and track on every frame."""
    cfg = config()
    cfg.model.interval, cfg.model.full_size_every, cfg.track.motion = "auto", 3, motion
    backend = SizeRecordingBackend()
    out = dataclasses.replace(outputs(tmp_path), video=None)
    record = Pipeline(cfg, TexturedFileSource(24, (1920, 1080)), "clip.mp4", backend, out, progress=False).run()
    assert backend.sizes == [(1920, 1080), (568, 320), (568, 320)] * 4
    assert "interval=2 full_size_every=3" in record.variant
    lines = [json.loads(line) for line in out.detections.read_text().splitlines()]
    assert [line["source"] for line in lines] == ["detector", "tracker"] * 12
    ids: dict[str, set] = {"near": set(), "far": set(), "sign": set()}
    for line in lines:
        assert sorted(line["labels"]) == ["car", "car", "speed_limit"], line
        boxes = {name: next(b for b in zip(line["boxes"], line["track_ids"], line["labels"]) if pick(b[0], name))
                 for name in ids}
        np.testing.assert_allclose(boxes["near"][0], [480, 540, 960, 864], atol=4)  # mapped back from 568x320
        np.testing.assert_allclose(boxes["sign"][0], [1536, 216, 1593.6, 270], atol=2)
        np.testing.assert_allclose(boxes["far"][0], [1152, 324, 1182, 344], atol=2)  # carried: too small at 568x320
        for name in ids:
            ids[name].add(boxes[name][1])
    assert all(len(found - {None}) == 1 for found in ids.values()), ids  # one track each, all along


def pick(box: list[float], name: str) -> bool:
    """Which of the recording backend's three objects a box (frame pixels) is, by where it lies."""
    return {"near": box[0] < 1000, "sign": box[0] > 1400, "far": 1000 < box[0] < 1400}[name]


@pytest.mark.parametrize("fill", ["auto", "forward"])
def test_720p_files_skip_every_2nd_frame_only_when_filled_from_both_sides(tmp_path, fill):
    """Below 1080p ``interval: auto`` detects every 2nd frame of a file when the skipped frames are filled from
    both sides (``track.fill: auto``), every frame when only from the frame before (k=2 then cost 4.9 points of
    car AP at 720p); the base-size passes apply either way."""
    cfg = config()
    cfg.model.interval, cfg.model.full_size_every, cfg.track.fill = "auto", 3, fill
    backend = SizeRecordingBackend()
    out = dataclasses.replace(outputs(tmp_path), video=None)
    record = Pipeline(cfg, TexturedFileSource(6, (1280, 720)), "clip.mp4", backend, out, progress=False).run()
    sources = [json.loads(line)["source"] for line in out.detections.read_text().splitlines()]
    if fill == "auto":
        assert backend.sizes == [(1280, 720), (568, 320), (568, 320)]
        assert "interval=2 full_size_every=3" in record.variant
        assert sources == ["detector", "tracker"] * 3
    else:
        assert backend.sizes == [(1280, 720), (568, 320), (568, 320)] * 2
        assert "full_size_every=3" in record.variant and "interval" not in record.variant
        assert sources == ["detector"] * 6


@pytest.mark.parametrize("size", [(640, 360), (1242, 375)])
def test_frames_the_policy_hardly_enlarges_run_at_full_size_on_every_2nd_frame(tmp_path, size):
    cfg = config()
    cfg.model.interval, cfg.model.full_size_every = "auto", 3
    backend = SizeRecordingBackend()
    out = dataclasses.replace(outputs(tmp_path), video=None)
    record = Pipeline(cfg, TexturedFileSource(6, size), "clip.mp4", backend, out, progress=False).run()
    assert backend.sizes == [size] * 3
    assert "interval=2" in record.variant and "full_size_every" not in record.variant


def test_without_a_tracker_hd_frames_are_detected_every_frame_at_full_size(tmp_path):
    """Nothing would fill skipped frames or carry the signs, so ``interval: auto`` is 1 and no base-size pass runs."""
    cfg = config()
    cfg.model.interval, cfg.track.enabled = "auto", False
    backend = SizeRecordingBackend()
    out = dataclasses.replace(outputs(tmp_path), video=None)
    Pipeline(cfg, TexturedFileSource(4, (1920, 1080)), "clip.mp4", backend, out, progress=False).run()
    assert backend.sizes == [(1920, 1080)] * 4


def test_an_hd_image_folder_is_stills_every_image_detected_at_full_size(tmp_path):
    """Images in a folder may be unrelated photos: none is skipped, shrunk or given another image's boxes."""
    from stream.sources import open_source

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (720, 1280, 3), np.uint8))
    cfg = config()
    cfg.model.interval = "auto"
    backend = SizeRecordingBackend()
    out = dataclasses.replace(outputs(tmp_path), video=None)
    Pipeline(cfg, open_source(str(folder), cfg.source), str(folder), backend, out, progress=False).run()
    assert backend.sizes == [(1280, 720)] * 4
    assert all(json.loads(line)["source"] == "detector" for line in out.detections.read_text().splitlines())
