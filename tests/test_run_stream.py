"""run_stream.py end to end with a random-init model: lossless output, SIGINT, and every bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

import run_stream
from tests.conftest import RANDOM_MODEL, REPO, write_video


def video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def cli(tmp_path: Path, *extra: str) -> list[str]:
    return ["--output", str(tmp_path / "out" / "v.avi"), "--detections", str(tmp_path / "out" / "d.jsonl"),
            "--benchmark-log", str(tmp_path / "log.csv"), "--quiet", *extra, *RANDOM_MODEL,
            f"output.dir={tmp_path / 'outputs'}", "output.codec=mjpg"]


def test_file_run_is_lossless_and_writes_video_jsonl_and_record(tmp_path, capsys):
    source = write_video(tmp_path / "clip.avi", frames=14)
    assert run_stream.main(["--source", str(source), *cli(tmp_path), "model.score_thresh=0.0",
                            "nms.score_thresh=0.0"]) == 0
    lines = jsonl(tmp_path / "out" / "d.jsonl")
    assert [line["frame"] for line in lines] == list(range(14))
    assert set(lines[0]) == {"frame", "timestamp", "boxes", "labels", "scores", "track_ids", "track_labels", "source"}
    # a file: every 2nd frame to the detector, the ones between filled by the tracker (model.interval=auto)
    assert [line["source"] for line in lines] == ["detector", "tracker"] * 7
    assert all(len(line["track_ids"]) == len(line["boxes"]) for line in lines)
    assert any(line["boxes"] for line in lines)
    box = next(b for line in lines for b in line["boxes"])
    assert 0 <= box[0] <= box[2] <= 160 and 0 <= box[1] <= box[3] <= 120  # source pixels
    assert video_frames(tmp_path / "out" / "v.avi") == 14
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert record["frames"] == 14 and record["detector_frames"] == 7
    assert record["backend"] == "torch" and record["top_n"] == 20
    assert {"mean", "p50", "p95"} <= set(record["stages"]["inference"])
    assert "14 frames" in capsys.readouterr().out


def test_benchmark_log_gains_a_row_per_run_and_keeps_old_rows(tmp_path):
    source = write_video(tmp_path / "clip.avi", frames=3)
    for _ in range(2):
        assert run_stream.main(["--source", str(source), *cli(tmp_path)]) == 0
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("kind,")


def test_sigint_finalises_a_playable_video_with_the_frames_written_so_far(tmp_path):
    source = write_video(tmp_path / "long.avi", frames=400)
    detections = tmp_path / "out" / "d.jsonl"
    process = subprocess.Popen([sys.executable, str(REPO / "run_stream.py"), "--source", str(source),
                                *cli(tmp_path)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not detections.exists() or len(detections.read_text().splitlines()) < 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    written = len(jsonl(detections))
    assert 3 <= written < 400
    assert video_frames(tmp_path / "out" / "v.avi") == written


def test_corrupt_frame_in_the_middle_is_skipped_and_counted(tmp_path):
    path = write_video(tmp_path / "c.avi", frames=10)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[starts[5]:starts[6] - 8] = bytes(starts[6] - 8 - starts[5])  # zero one JPEG frame
    path.write_bytes(bytes(data))
    assert run_stream.main(["--source", str(path), *cli(tmp_path)]) == 0
    assert [line["frame"] for line in jsonl(tmp_path / "out" / "d.jsonl")] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert json.loads((tmp_path / "out" / "benchmark.json").read_text())["skipped"] == 1


def test_missing_output_folder_is_created(tmp_path):
    source = write_video(tmp_path / "clip.avi", frames=2)
    args = cli(tmp_path)
    args[1] = str(tmp_path / "new" / "deeper" / "v.avi")
    assert run_stream.main(["--source", str(source), *args]) == 0
    assert video_frames(tmp_path / "new" / "deeper" / "v.avi") == 2


def bad_weights(tmp_path: Path) -> str:
    from detector.models import build_detector

    path = tmp_path / "other.pt"
    torch.save(build_detector("driving_mobilenet_v2_fpn", 11).state_dict(), path)  # another architecture
    return str(path)


BAD_INPUTS = {
    "missing file": (lambda t: ["--source", str(t / "nope.mp4")], "does not exist"),
    "unreadable file": (lambda t: ["--source", str((t / "x.mp4").write_bytes(b"junk") and t / "x.mp4")], "x.mp4"),
    "zero frames": (lambda t: ["--source", str(write_video(t / "z.avi", frames=0))], "no frames"),
    "camera": (lambda t: ["--source", "57", "source.open_timeout=2"], "camera 57"),
    "silent url": (lambda t: ["--source", "rtsp://user:pw@127.0.0.1:9/live", "source.open_timeout=1"], "***@"),
    "unwritable output": (lambda t: ["--source", str(write_video(t / "ok.avi", 2)), "--detections",
                                      str((t / "f").write_text("x") and t / "f" / "d.jsonl")], "cannot write"),
    "weights do not fit": (lambda t: ["--source", str(write_video(t / "ok.avi", 2)),
                                      f"model.weights={bad_weights(t)}"], "do not fit"),
    "unknown key": (lambda t: ["--source", str(write_video(t / "ok.avi", 2)), "model.topn=5"], "model.topn"),
    "bad value": (lambda t: ["--source", str(write_video(t / "ok.avi", 2)), "source.policy=fast"], "lossless"),
    "bad config file": (lambda t: ["--source", str(write_video(t / "ok.avi", 2)), "--config",
                                   str((t / "c.yaml").write_text("model: [") and t / "c.yaml")], "YAML"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capsys, case):
    make_args, expected = BAD_INPUTS[case]
    started = time.perf_counter()
    assert run_stream.main([*cli(tmp_path), *make_args(tmp_path)]) == 2  # later flags win
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert "pw" not in err[0] and "Traceback" not in err[0]
    assert time.perf_counter() - started < 15


def test_bad_input_does_not_clobber_an_existing_log(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("kind,fps\nstream,9.5\n")
    assert run_stream.main(["--source", str(tmp_path / "nope.mp4"), *cli(tmp_path)]) == 2
    assert log.read_text() == "kind,fps\nstream,9.5\n"
