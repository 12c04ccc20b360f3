"""The interval sweep's choices: the detector phase that tracks the most labelled frames, scoring, the rule."""
from __future__ import annotations

import contextlib
import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import interval_sweep
from bench.interval_sweep import (IntervalPoint, hardest_phase, labelled_frames, recommend, recommend_each, score,
                                  table, write_results)
from commands.interval import main
from core.detections import Detections
from core.labels import LABEL_IDS, LABELS
from detector.datasets import AnnotatedImage, DatasetError

REPO = Path(__file__).resolve().parent.parent


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


def point(k: int, fps: float, car: float, size: str | None = None) -> IntervalPoint:
    return IntervalPoint(k, 0, fps, car, car, 0, 0, 0, 0, size)


def test_the_recommendation_is_the_fastest_within_the_allowed_drop():
    points = [point(1, 20, 0.60), point(2, 35, 0.59), point(3, 48, 0.575), point(4, 55, 0.55)]
    assert recommend(points, 3.0).interval == 3
    assert recommend(points, 0.5).interval == 1


def test_labels_are_scaled_to_the_size_the_clip_was_scaled_to():
    """Labels of a 640x360 frame scored on the clip scaled to 1280x540: x times 2, y times 1.5."""
    truth = labelled_frames([image("clip_000004", [[10, 20, 50, 60]])])
    line = {"frame": 4, "boxes": [[20, 30, 100, 90]], "labels": ["car"], "scores": [0.9]}
    assert score([line], truth, "1280x540") == pytest.approx((1.0, 1.0))
    assert score([line], truth) == pytest.approx((0.0, 0.0))  # unscaled labels miss the box


def test_without_sizes_the_table_and_files_are_as_before(tmp_path):
    points = [point(1, 20, 0.60), point(2, 35, 0.59)]
    choices = recommend_each(points, 3.0)
    assert table(points, choices).splitlines()[0].split() == ["k", "phase", "FPS", "vs", "k=1", "car", "AP50",
                                                              "mAP50", "det", "frames", "tracked", "labelled"]
    write_results(points, choices, tmp_path, {})
    header = (REPO / "docs" / "interval" / "interval.csv").read_text().splitlines()[0]
    assert (tmp_path / "interval.csv").read_text().splitlines()[0] == header
    assert json.loads((tmp_path / "interval.json").read_text())["recommended"] == 2


def test_each_size_is_compared_with_its_own_k1():
    points = [point(1, 20, 0.60, "640x360"), point(2, 35, 0.50, "640x360"),
              point(1, 8, 0.70, "1920x1080"), point(2, 15, 0.69, "1920x1080")]
    choices = recommend_each(points, 3.0)
    assert {size: c.interval for size, c in choices.items()} == {"640x360": 1, "1920x1080": 2}
    rows = [line.split() for line in table(points, choices).splitlines()]
    assert rows[0][0] == "size" and [r[:2] for r in rows[1:]] == [["640x360", "1"], ["640x360", "2"],
                                                                   ["1920x1080", "1"], ["1920x1080", "2"]]
    assert [r[4] for r in rows[1:]] == ["1.00x", "1.75x", "1.00x", "1.88x"]


ORIGINAL = (160, 120)
CAR = np.array([40, 30, 100, 84], np.float32)  # in the original clip's pixels, on every frame


class GroundTruthBackend:
    """Finds the labelled car wherever the frame's size puts it: a perfect detector at any size."""

    name, device, class_map = "fake", "cpu", np.arange(len(LABELS))
    worker_threads = staticmethod(contextlib.nullcontext)

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        factor = np.array([width / ORIGINAL[0], height / ORIGINAL[1]] * 2, np.float32)
        return Detections((CAR * factor)[None], np.array([0.9], np.float32), np.array([LABEL_IDS["car"]]))


def still_clip(path: Path, frames: int) -> Path:
    """A textured scene that does not move, so the tracker's frames keep the box where it was."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, ORIGINAL)
    scene = np.random.default_rng(0).integers(0, 255, (ORIGINAL[1], ORIGINAL[0], 3), dtype=np.uint8)
    for _ in range(frames):
        writer.write(scene)
    writer.release()
    return path


def coco_labels(path: Path, frames: list[int]) -> Path:
    x1, y1, x2, y2 = CAR.tolist()
    path.write_text(json.dumps({
        "categories": [{"id": 1, "name": "car"}],
        "images": [{"id": f, "file_name": f"clip_{f:06d}.jpg", "width": ORIGINAL[0], "height": ORIGINAL[1]}
                   for f in frames],
        "annotations": [{"id": f, "image_id": f, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1]}
                        for f in frames]}))
    return path


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs FFmpeg (Debian package ffmpeg; .ci/run installs it)")
def test_sizes_sweep_the_scaled_clip_side_by_side_with_the_labels_scaled(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(interval_sweep, "build_backend", lambda model: GroundTruthBackend())
    clip = still_clip(tmp_path / "clip.avi", 10)
    labels = coco_labels(tmp_path / "labels.json", [4, 8])
    out = tmp_path / "out"
    assert main(["--source", str(clip), "--data", f"coco:{labels}", "--intervals", "1,2", "--sizes", "80x60,320x240",
                 "--out", str(out), f"output.benchmark_csv={tmp_path / 'log.csv'}", "model.device=cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:-1]]
    assert [(r[0], r[1]) for r in rows] == [("80x60", "1"), ("80x60", "2"), ("320x240", "1"), ("320x240", "2")]
    assert all(float(r[5]) == 1.0 for r in rows), lines  # car AP@0.5: every labelled box found at every size
    assert lines[-1].startswith("recommended: model.interval=") and all(f" at {s}" in lines[-1] for s in ("80x60",
                                                                                                      "320x240"))
    with (out / "interval.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [(r["size"], r["interval"], float(r["car_ap50"])) for r in written] == [
        ("80x60", "1", 1.0), ("80x60", "2", 1.0), ("320x240", "1", 1.0), ("320x240", "2", 1.0)]
    assert all(r["labelled_frames"] == "2" for r in written)
    report = json.loads((out / "interval.json").read_text())
    assert set(report["recommended_by_size"]) == {"80x60", "320x240"} and "recommended" not in report
    assert report["settings"]["sizes"] == ["80x60", "320x240"] and (out / "interval.png").stat().st_size > 0


def test_a_bad_size_is_one_error_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--source", str(tmp_path / "c.mp4"), "--data", "coco:x.json", "--sizes", "640x360,1280x"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == "error: argument --sizes: '1280x' is not a size WIDTHxHEIGHT\n"
