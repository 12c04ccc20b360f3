"""Several sources in one ``driving-detect stream`` run: names, outputs, records, bad input, and the shared pool."""
from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from commands.main import main
from core.config import ConfigError
from core.detections import Detections
from stream.multi import SourceEntry, parse_sources
from stream.pool import InferencePool
from stream.queues import Stopped
from tests.conftest import RANDOM_MODEL, REPO, write_video

MODEL = [*RANDOM_MODEL, "model.score_thresh=0.0", "nms.score_thresh=0.0", "track.enabled=true"]


def stream(*args: str) -> int:
    torch.manual_seed(0)  # random weights: the same model in every run of a test
    return main(["stream", "--quiet", "--no-video", *args, *MODEL])


def test_names_default_to_the_stem_or_camN_made_unique_and_an_explicit_name_wins():
    entries = parse_sources(["a.mp4", "front=rtsp://user:pw@cam/x?a=b", "0", "sub/a.mp4", "a=b.mp4"])
    assert entries == [SourceEntry("a-2", "a.mp4"), SourceEntry("front", "rtsp://user:pw@cam/x?a=b"),
                       SourceEntry("cam0", "0"), SourceEntry("a-3", "sub/a.mp4"), SourceEntry("a", "b.mp4")]
    assert parse_sources(["rtsp://cam/x?a=b"])[0].spec == "rtsp://cam/x?a=b"  # a URL's '=' names nothing
    with pytest.raises(ConfigError, match="'front' is given to more than one source"):
        parse_sources(["front=a.mp4", "front=b.mp4"])


def test_each_source_writes_what_a_run_of_it_alone_writes_plus_a_record_each_and_one_for_the_run(tmp_path, capsys):
    a = write_video(tmp_path / "a.avi", frames=24)
    b = write_video(tmp_path / "b.avi", frames=15, size=(128, 96))
    assert stream("--source", str(a), "--out", str(tmp_path / "alone"), "--benchmark-log", str(tmp_path / "1.csv")) == 0
    log = tmp_path / "log.csv"
    assert stream("--source", str(a), "--source", f"back={b}", "--source", str(a), "--out", str(tmp_path / "run"),
                  "--benchmark-log", str(log)) == 0
    alone = (tmp_path / "alone" / "detections.jsonl").read_text()
    run = tmp_path / "run"
    assert (run / "a" / "detections.jsonl").read_text() == alone == (run / "a-2" / "detections.jsonl").read_text()
    assert len((run / "back" / "detections.jsonl").read_text().splitlines()) == 15
    records = {name: json.loads((run / name / "benchmark.json").read_text()) for name in ("a", "back", "a-2")}
    assert [r["frames"] for r in records.values()] == [24, 15, 24] and records["back"]["source_size"] == "128x96"
    total = json.loads((run / "run.json").read_text())
    assert total["frames"] == 63 and total["variant"] == "sources=3" and total["ended"] == "complete"
    assert total["workers"] >= 1 and total["backend"] == "torch"
    assert len(log.read_text().splitlines()) == 1 + 3 + 1  # header, a row per source, one for the run
    out = capsys.readouterr().out
    assert "back: 15 frames" in out and "3 sources: 63 frames" in out


def test_a_source_that_does_not_open_stops_the_run_before_it_starts_naming_it(tmp_path, capsys):
    a = write_video(tmp_path / "a.avi", frames=5)
    missing = tmp_path / "nope.mp4"
    assert stream("--source", str(a), "--source", f"rear={missing}", "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: source 'rear'") and "nope.mp4" in err[0], err
    assert not (tmp_path / "run").exists()


def test_keep_going_runs_the_sources_that_open_and_reports_the_other(tmp_path, capsys):
    a = write_video(tmp_path / "a.avi", frames=5)
    assert stream("--source", str(a), "--source", f"rear={tmp_path / 'nope.mp4'}", "--keep-going",
                  "--out", str(tmp_path / "run"), "--benchmark-log", str(tmp_path / "log.csv")) == 0
    err = capsys.readouterr().err
    assert "error: source 'rear'" in err and "--keep-going" in err
    assert len((tmp_path / "run" / "a" / "detections.jsonl").read_text().splitlines()) == 5
    assert not (tmp_path / "run" / "rear").exists()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["ended"] == "failed"


@pytest.mark.parametrize("flag", [["--output", "v.mp4"], ["--detections", "d.jsonl"], ["--record", "r.json"]])
def test_a_single_output_path_with_several_sources_is_one_error_line(tmp_path, capsys, flag):
    a = write_video(tmp_path / "a.avi", frames=2)
    assert stream("--source", str(a), "--source", str(a), *flag) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag[0]}") and "--out DIR" in err[0]


def test_two_sources_with_the_same_name_are_one_error_line(tmp_path, capsys):
    a = write_video(tmp_path / "a.avi", frames=2)
    assert stream("--source", f"x={a}", "--source", f"x={a}", "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'x' is given to more than one source" in err[0]


def test_an_output_inside_another_sources_image_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    a = write_video(tmp_path / "a.avi", frames=2)
    assert stream("--source", str(a), "--source", f"{folder}/*.jpg", "--out", str(folder)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inside the source folder" in err[0]


class CountingBackend:
    """Records which source each call served; ``seconds`` per call."""

    name, device, class_map = "fake", "cpu", np.arange(11)

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.order: list[int] = []

    def worker_threads(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __call__(self, image: np.ndarray) -> Detections:
        time.sleep(self.seconds)
        self.order.append(int(image[0, 0, 0]))
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))


def test_the_pool_serves_sources_in_turn_so_a_flooding_source_does_not_starve_a_slow_one():
    backend = CountingBackend(0.005)
    pool = InferencePool(backend, workers=1)
    for name in ("flood", "slow", "stalled"):
        pool.register(name)
    stop = threading.Event()

    def feed(name: str, value: int, every: float, threads: int) -> None:
        def loop() -> None:
            with contextlib.suppress(Stopped):  # the pool closed while this one waited
                while not stop.is_set():
                    pool.infer(name, np.full((4, 4, 3), value, np.uint8))
                    time.sleep(every)
        for _ in range(threads):
            threading.Thread(target=loop, daemon=True).start()

    feed("flood", 1, 0.0, threads=20)  # always has 20 frames waiting: first come, first served would make the
    #                                     slow source wait 100 ms a frame, so it would get fewer than 10 in
    feed("slow", 2, 0.02, threads=1)   # one frame every 20 ms at most
    # "stalled" never sends anything: it must hold up no one
    threading.Timer(1.0, lambda: (stop.set(), pool.close())).start()
    pool.serve()
    slow = backend.order.count(2)
    assert slow >= 15 and backend.order.count(1) >= slow  # in turn: about one frame per 25 ms, ~40 in all
    assert pool.served["stalled"] == 0


def test_one_web_view_serves_every_source_a_grid_a_page_each_and_metrics_by_source(tmp_path):
    a = write_video(tmp_path / "a.avi", frames=20)
    b = write_video(tmp_path / "b.avi", frames=12)
    stderr = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "commands.main", "stream", "--source", str(a), "--source", f"rear={b}", "--no-video",
         "--out", str(tmp_path / "run"), "--benchmark-log", str(tmp_path / "log.csv"), "--serve", "127.0.0.1:0",
         "--serve-token", "tok3n", "serve.linger=60", *MODEL],
        cwd=REPO, stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True)
    try:
        deadline = time.time() + 120
        while not (found := re.search(r"serving (http://\S+?/)", stderr.read_text())):
            assert time.time() < deadline and process.poll() is None, stderr.read_text()[-2000:]
            time.sleep(0.1)
        url = found.group(1)

        def get(path: str) -> str:
            with urllib.request.urlopen(f"{url}{path}?token=tok3n", timeout=10) as response:
                return response.read().decode()

        while json.loads(get("api/status"))["sources"]["rear"]["state"] != "finished" or \
                json.loads(get("api/status"))["sources"]["a"]["state"] != "finished":
            assert time.time() < deadline, get("api/status")[:500]
            time.sleep(0.2)
        grid = get("")
        assert 'href="source/a/"' in grid and 'data-src="source/rear/stream.mjpg"' in grid
        assert 'id="stream"' in get("source/rear/")  # the one-source dashboard, under the source's prefix
        rear = json.loads(get("source/rear/api/status"))
        assert rear["name"] == "rear" and rear["frames"] == 12 and rear["state"] == "finished"
        frames = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
                  for line in get("metrics").splitlines() if line.startswith("driving_detect_frames_total{")}
        assert frames == {'source="a"': 20.0, 'source="rear"': 12.0}
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}source/rear/api/status", timeout=10)  # the token guards every page
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 0
