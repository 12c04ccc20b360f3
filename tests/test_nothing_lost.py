"""Nothing lost: the input is never an output, every output survives every kind of stop (SIGKILL, a full disk,
a vanished folder, Ctrl-C), and the record says how the run ended and what ran. Real files, real processes and
signals, a real tmpfs for the full disk, ffprobe and headless Chromium for the video."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import run_stream
from fleet.config import BatchError
from fleet.sources import expand_sources
from stream.record import read_records
from tests.conftest import RANDOM_MODEL, REPO, write_video

FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(not FFPROBE or not shutil.which("ffmpeg"),
                                  reason="needs FFmpeg's ffmpeg and ffprobe (Debian package ffmpeg; .ci/run installs it)")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decoded_frames(path: Path) -> int:
    """Frames FFmpeg decodes from ``path`` (0 when it cannot read it at all)."""
    result = subprocess.run([FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                             "stream=nb_read_frames,width,height", "-of", "json", str(path)],
                            capture_output=True, text=True)
    streams = json.loads(result.stdout or "{}").get("streams") or [{}]
    return int(streams[0].get("nb_read_frames") or 0)


def noise_video(path: Path, frames: int, size: tuple[int, int] = (320, 240), fps: float = 30.0) -> Path:
    """Random noise: as large as H.264 gets, so a small disk fills within a few dozen frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
    writer.release()
    return path


def stream_command(source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "run_stream.py"), "--source", str(source), "--output", str(out / "v.mp4"),
            "--detections", str(out / "d.jsonl"), "--benchmark-log", str(out / "log.csv"), *RANDOM_MODEL, *extra]


def wait_for_lines(path: Path, lines: int, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= lines:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {lines} lines (exit code {process.poll()})")


# ---------------------------------------------------------------- the input is never an output

def _same_file_cases(tmp: Path, source: Path) -> dict[str, list[str]]:
    (tmp / "link.avi").symlink_to(source)
    os.link(source, tmp / "hard.avi")
    return {
        "output is the source": ["--output", str(source)],
        "detections is the source": ["--detections", str(source)],
        "benchmark log is the source": ["--benchmark-log", str(source)],
        "record is the source": ["--record", str(source)],
        "output is a symlink to the source": ["--output", str(tmp / "link.avi")],
        "detections is a hard link of the source": ["--detections", str(tmp / "hard.avi")],
    }


@pytest.mark.parametrize("case", ["output is the source", "detections is the source", "benchmark log is the source",
                                  "record is the source", "output is a symlink to the source",
                                  "detections is a hard link of the source"])
def test_an_output_that_is_the_source_is_bad_input_and_the_source_is_untouched(tmp_path, capsys, case):
    source = write_video(tmp_path / "clip.avi", frames=6)
    before = source.read_bytes()
    args = _same_file_cases(tmp_path, source)[case]
    code = run_stream.main(["--source", str(source), "--output", str(tmp_path / "o" / "v.avi"), "--detections",
                            str(tmp_path / "o" / "d.jsonl"), "--benchmark-log", str(tmp_path / "o" / "log.csv"),
                            *args, "--quiet", *RANDOM_MODEL, "output.codec=mjpg"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: output '") and "source" in err[0], err
    assert source.read_bytes() == before
    assert not (tmp_path / "o").exists()  # nothing was opened for writing


def test_an_output_inside_an_image_folder_source_is_bad_input(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), np.full((60, 80, 3), 50 * i, np.uint8))
    for source in (str(frames), str(frames / "*.jpg")):
        code = run_stream.main(["--source", source, "--detections", str(frames / "d.jsonl"), "--no-video", "--quiet",
                                *RANDOM_MODEL, f"output.benchmark_csv={tmp_path / 'log.csv'}"])
        err = capsys.readouterr().err
        assert code == 2 and "lies inside the source folder" in err, err
    assert sorted(p.name for p in frames.iterdir()) == ["000.jpg", "001.jpg", "002.jpg"]


def test_batch_never_takes_its_outputs_as_inputs(tmp_path):
    """Rule: ``--out`` may lie inside a source folder; the walk skips it, and a source inside it is bad input."""
    trip = tmp_path / "trip"
    (trip / "runs" / "x.avi").mkdir(parents=True)
    write_video(trip / "x.avi", frames=2)
    write_video(trip / "runs" / "x.avi" / "annotated.mp4", frames=2)  # what an earlier batch wrote
    assert [i.rel for i in expand_sources([str(trip)], trip / "runs")] == ["x.avi"]
    assert [i.rel for i in expand_sources([str(trip / "**" / "*.*")], trip / "runs")] == ["x.avi"]
    with pytest.raises(BatchError, match="inside the output folder"):
        expand_sources([str(trip / "runs" / "x.avi" / "annotated.mp4")], trip / "runs")


# ---------------------------------------------------------------- every output survives every stop

@needs_ffmpeg
def test_sigkill_leaves_a_video_that_plays_up_to_its_last_fragment_and_whole_jsonl_lines(tmp_path, browser):
    source = write_video(tmp_path / "long.avi", frames=900, size=(320, 240), fps=30.0)
    out = tmp_path / "out"
    process = subprocess.Popen(stream_command(source, out, "--quiet"), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        wait_for_lines(out / "d.jsonl", 100, process)
    finally:
        process.kill()  # SIGKILL: no handler runs, nothing is finalised
        process.wait()
    lines = jsonl(out / "d.jsonl")  # every line parses
    assert [line["frame"] for line in lines] == list(range(len(lines)))
    frames = decoded_frames(out / "v.mp4")
    # A 1 s fragment (30 frames) reaches the disk when the next key frame is encoded; x264 holds a few frames
    # more in its threads (on 2 cores: measured 30-36 frames behind the JSONL)
    assert len(lines) - 30 - 12 <= frames <= len(lines), (frames, len(lines))
    assert frames >= 60

    page = out / "play.html"
    page.write_text('<video id="v" src="v.mp4" muted autoplay playsinline></video>')
    browser.get(page.as_uri())
    deadline, played = time.time() + 20, 0.0
    while time.time() < deadline and played < 1.0:
        time.sleep(0.2)
        played = browser.execute_script("const v = document.getElementById('v'); v.play(); return v.currentTime;")
    error = browser.execute_script("const e = document.getElementById('v').error; return e && e.message;")
    assert played >= 1.0 and not error, (played, error)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 1.5 MB tmpfs. Mounting needs root (CI and these machines run as root); elsewhere the test skips."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@needs_ffmpeg
def test_a_full_disk_is_the_sink_stages_failure_and_what_was_written_stays_readable(tmp_path, small_disk):
    source = noise_video(tmp_path / "noise.avi", frames=300)
    log_csv = small_disk / "log.csv"
    log_csv.write_text("kind,fps\nstream,9.5\n")
    result = subprocess.run(stream_command(source, small_disk, "--quiet"), cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-2000:]
    assert err[-1].startswith("error: stage 'sink' failed") and "No space left on device" in err[-1], err[-3:]
    assert str(small_disk) in err[-1] and "Traceback" not in result.stderr
    lines = jsonl(small_disk / "d.jsonl")
    assert 0 < len(lines) < 300
    assert decoded_frames(small_disk / "v.mp4") > 0  # the fragments written before the disk filled play
    rows = read_records(log_csv)  # the old row intact; a new row only if it fitted whole
    assert rows[0] == {"kind": "stream", "fps": "9.5"} and len(rows) <= 2
    record = small_disk / "benchmark.json"
    assert not record.exists() or json.loads(record.read_text())["ended"] == "failed"
    assert not [p for p in small_disk.iterdir() if p.name.endswith(".partial")]


def test_an_output_folder_removed_mid_run_is_the_sink_stages_failure(tmp_path):
    source = write_video(tmp_path / "long.avi", frames=2000, size=(320, 240), fps=30.0)
    out = tmp_path / "out"
    process = subprocess.Popen(stream_command(source, out, "--quiet", "output.codec=mjpg"), cwd=REPO,
                               stderr=subprocess.PIPE, text=True)
    wait_for_lines(out / "d.jsonl", 3, process)
    shutil.rmtree(out)
    _, stderr = process.communicate(timeout=60)
    last = stderr.strip().splitlines()[-1]
    assert process.returncode == 1, stderr[-2000:]
    assert last.startswith("error: stage 'sink' failed") and "vanished" in last and str(out) in last, last


def test_a_source_that_does_not_open_leaves_no_files(tmp_path):
    outputs = tmp_path / "outputs"
    for source in (str(tmp_path / "missing.mp4"), str((tmp_path / "junk.mp4").write_bytes(b"junk") and
                                                        tmp_path / "junk.mp4")):
        assert run_stream.main(["--source", source, "--quiet", *RANDOM_MODEL, f"output.dir={outputs}",
                                f"output.benchmark_csv={outputs / 'log.csv'}"]) == 2
    assert not outputs.exists()


def test_a_no_video_rerun_sets_the_earlier_video_aside(tmp_path, caplog):
    source = write_video(tmp_path / "clip.avi", frames=3)
    args = ["--source", str(source), "--quiet", *RANDOM_MODEL, f"output.dir={tmp_path / 'outputs'}",
            f"output.benchmark_csv={tmp_path / 'log.csv'}"]
    assert run_stream.main(args) == 0
    folder = tmp_path / "outputs" / "clip"
    assert (folder / "annotated.mp4").exists()
    assert run_stream.main([*args, "--no-video", "--max-frames", "2"]) == 0
    assert not (folder / "annotated.mp4").exists() and (folder / "annotated.previous.mp4").exists()
    assert len(jsonl(folder / "detections.jsonl")) == 2
    assert "renamed to 'annotated.previous.mp4'" in caplog.text


# ---------------------------------------------------------------- runs say how they ended and what ran

def test_ctrl_c_is_recorded_as_interrupted_and_log_lines_never_share_the_progress_bars_line(tmp_path):
    source = write_video(tmp_path / "long.avi", frames=400)
    out = tmp_path / "out"
    process = subprocess.Popen(stream_command(source, out, "output.codec=mjpg"), cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_lines(out / "d.jsonl", 5, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    record = json.loads((out / "benchmark.json").read_text())
    assert record["ended"] == "interrupted" and record["source_frames"] == 400
    assert f"stopped after {record['frames']} of 400 frames (interrupted)" in stdout
    assert "%|" in stderr  # the progress bar was drawn
    segments = [s for s in re.split(r"[\r\n]", stderr) if "stopping; finishing the frames in flight" in s]
    assert segments and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING", s) for s in segments), segments


def test_the_record_names_what_ran_and_a_max_frames_stop(tmp_path, capsys):
    source = write_video(tmp_path / "clip.avi", frames=14)
    out = tmp_path / "out"
    assert run_stream.main(["--source", str(source), "--output", str(out / "v.avi"), "--detections",
                            str(out / "d.jsonl"), "--record", str(tmp_path / "rec" / "r.json"), "--benchmark-log",
                            str(tmp_path / "log.csv"), "--max-frames", "5", "--quiet", *RANDOM_MODEL,
                            "output.codec=mjpg", "model.workers=0"]) == 0
    record = json.loads((tmp_path / "rec" / "r.json").read_text())
    assert not (out / "benchmark.json").exists()
    assert (record["ended"], record["frames"], record["source_frames"]) == ("max_frames", 5, 14)
    assert record["precision"] == "fp32" and record["backend"] == "torch"
    assert record["workers"] >= 1 and record["threads"] >= 1  # resolved, never auto
    assert record["input_size"] == "128x96"  # 160x120 within min_size 96, max_size 128
    row = read_records(tmp_path / "log.csv")[-1]
    assert (row["precision"], row["ended"], row["input_size"]) == ("fp32", "max_frames", "128x96")
    assert "stopped after 5 of 14 frames (--max-frames)" in capsys.readouterr().out


def test_the_record_goes_next_to_the_detections_when_their_path_is_given(tmp_path):
    source = write_video(tmp_path / "clip.avi", frames=2)
    assert run_stream.main(["--source", str(source), "--detections", str(tmp_path / "d" / "x.jsonl"), "--no-video",
                            "--quiet", *RANDOM_MODEL, f"output.dir={tmp_path / 'outputs'}",
                            f"output.benchmark_csv={tmp_path / 'log.csv'}"]) == 0
    assert json.loads((tmp_path / "d" / "benchmark.json").read_text())["ended"] == "complete"
    assert not (tmp_path / "outputs").exists()


@needs_ffmpeg
def test_a_resolution_change_keeps_boxes_in_each_frames_own_pixels(tmp_path, caplog):
    parts = []
    for name, size in (("a", "160x120"), ("b", "320x240")):
        parts.append(tmp_path / f"{name}.ts")
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-frames:v",
                        "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(parts[-1])], check=True)
    source = tmp_path / "changes.ts"  # MPEG-TS carries a change of resolution mid-stream
    source.write_bytes(b"".join(p.read_bytes() for p in parts))
    out = tmp_path / "out"
    assert run_stream.main(["--source", str(source), "--output", str(out / "v.mp4"), "--detections",
                            str(out / "d.jsonl"), "--benchmark-log", str(tmp_path / "log.csv"), "--quiet",
                            *RANDOM_MODEL, "model.score_thresh=0.0", "nms.score_thresh=0.0"]) == 0
    lines = jsonl(out / "d.jsonl")
    assert [line["frame"] for line in lines] == list(range(20))
    right = [max((b[2] for b in line["boxes"]), default=0) for line in lines]
    bottom = [max((b[3] for b in line["boxes"]), default=0) for line in lines]
    assert max(right[:10]) <= 160 and max(bottom[:10]) <= 120
    assert max(right[10:]) > 160 and max(right[10:]) <= 320 and max(bottom[10:]) <= 240  # not scaled to 160x120
    assert caplog.text.count("frame 10 is 320x240, the frames before it 160x120") == 1
    probe = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0",
                            str(out / "v.mp4")], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "160,120"  # the annotated video keeps its first size
    assert decoded_frames(out / "v.mp4") == 20


def test_a_1080p_source_is_drawn_and_written_at_output_max_size_with_boxes_in_source_pixels(tmp_path):
    source = write_video(tmp_path / "hd.avi", frames=3, size=(1920, 1080))
    out = tmp_path / "out"
    assert run_stream.main(["--source", str(source), "--output", str(out / "v.avi"), "--detections",
                            str(out / "d.jsonl"), "--benchmark-log", str(tmp_path / "log.csv"), "--quiet",
                            *RANDOM_MODEL, "output.codec=mjpg", "model.score_thresh=0.0", "nms.score_thresh=0.0"]) == 0
    capture = cv2.VideoCapture(str(out / "v.avi"))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    capture.release()
    right = max(b[2] for line in jsonl(out / "d.jsonl") for b in line["boxes"])
    assert 1280 < right <= 1920  # source pixels, not the video's


@pytest.mark.parametrize(("size", "expected"), [((4096, 2160), "the model sees 1600x843"),
                                                 ((360, 640), "the model sees 320x568")])
def test_4k_and_portrait_frames_run_and_the_size_the_model_sees_is_logged_once(tmp_path, caplog, size, expected):
    source = write_video(tmp_path / "big.avi", frames=2, size=size)
    assert run_stream.main(["--source", str(source), "--no-video", "--detections", str(tmp_path / "d.jsonl"),
                            "--quiet", f"output.benchmark_csv={tmp_path / 'log.csv'}", "model.backend=torch",
                            "model.weights=random", "model.precision=fp32", "model.top_n=20"]) == 0
    assert caplog.text.count("the model sees") == 1 and expected in caplog.text, caplog.text[-500:]


def test_a_one_pixel_high_frame_is_one_error_line_not_a_crash(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "strip.png"), np.full((1, 640, 3), 90, np.uint8))
    assert run_stream.main(["--source", str(tmp_path / "strip.png"), "--quiet", *RANDOM_MODEL,
                            f"output.dir={tmp_path / 'outputs'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "640x1 frames" in err[0] and "at least 16 pixels" in err[0], err


@needs_ffmpeg
def test_a_phone_video_stored_with_a_rotation_comes_out_upright_as_players_show_it(tmp_path):
    from stream.config import SourceConfig
    from stream.sources import open_source

    landscape = tmp_path / "land.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-frames:v", "3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(landscape)], check=True)
    portrait = tmp_path / "phone.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(landscape), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(portrait)], check=True)
    source = open_source(str(portrait), SourceConfig())
    frames = [f.image for f in source]
    assert source.info.size == (240, 320) and [f.shape for f in frames] == [(320, 240, 3)] * 3
    capture = cv2.VideoCapture(str(portrait))  # what a player (and OpenCV) shows
    shown = capture.read()[1]
    capture.release()
    assert np.abs(frames[0].astype(int) - shown.astype(int)).mean() < 2
