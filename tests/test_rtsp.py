"""Live sources against a real RTSP server on loopback (Debian's rtsp-server-perl fed by ffmpeg): transports,
drop-oldest with a slow detector, a publisher that goes away and comes back, output timing, credentials."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from bench.rtsp_server import GstRtspServer, Publisher, RtspServer, gst_missing, missing_tools
from core.log import log_line_time
from stream.config import PipelineConfig, SourceConfig
from stream.pipeline import Outputs, Pipeline
from stream.sources import LiveSource, SourceError
from tests.conftest import RANDOM_MODEL, REPO
from tests.test_pipeline import SlowBackend

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {' and '.join(missing_tools())} "
                                "(Debian packages rtsp-server-perl and ffmpeg; .ci/run installs them)")
SECRET = "admin:hunter2secret"


@pytest.fixture(scope="module")
def server():
    with RtspServer() as rtsp:
        yield rtsp


def test_auto_transport_tries_tcp_then_udp_and_each_transport_can_be_forced(server, caplog):
    with Publisher(server, "transports"):
        url = server.url("transports", SECRET)
        with pytest.raises(SourceError, match=r"\(tcp: .*400 Bad Request\)") as refused:
            LiveSource(url, SourceConfig(rtsp_transport="tcp"))  # this server serves RTP over UDP only
        source = LiveSource(url, SourceConfig())  # auto
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 10:
                source.stop()
        udp = LiveSource(url, SourceConfig(rtsp_transport="udp"))
        udp.stop()
        list(udp)
    assert "RTSP over udp" in caplog.text
    assert source.info.size == (320, 240) and source.info.fps_known and source.info.fps == 25
    assert [f.index for f in frames] == list(range(10))
    assert all(f.source_time is not None for f in frames)
    assert frames[-1].source_time > frames[0].source_time
    assert "hunter2" not in str(refused.value) + caplog.text


@pytest.mark.skipif(bool(gst_missing()), reason=str(gst_missing()))
def test_each_transport_opens_on_a_server_that_serves_both(caplog):
    with GstRtspServer() as gst:
        for transport in ("auto", "tcp", "udp"):
            source = LiveSource(gst.url(SECRET), SourceConfig(rtsp_transport=transport))
            got = []
            for frame in source:
                got.append(frame)
                if len(got) == 5:
                    source.stop()
            assert len(got) == 5 and source.info.size == (320, 240), transport
    assert "RTSP over tcp" in caplog.text  # auto: TCP first, and this server takes it
    assert "hunter2" not in caplog.text


def test_drop_oldest_with_a_slow_detector_counts_drops_and_bounds_latency(server, tmp_path):
    with Publisher(server, "slow"):
        cfg = PipelineConfig(source=SourceConfig(queue_size=2))
        cfg.model.workers = 1  # one slow fake detector, so it falls behind the camera on a machine of any size
        source = LiveSource(server.url("slow"), cfg.source)
        outputs = Outputs(tmp_path / "out.mp4", tmp_path / "det.jsonl")
        record = Pipeline(cfg, source, server.url("slow"), SlowBackend(0.12), outputs, max_frames=75,
                          progress=False).run()
    frames = [json.loads(line)["frame"] for line in outputs.detections.read_text().splitlines()]
    assert record.dropped > 20 and record.frames == len(frames) < 75
    assert frames == sorted(frames) and frames[-1] - frames[0] + 1 > len(frames)
    assert record.latency["p95"] < 1500  # a 2-deep queue at ~8 FPS: under a second, however long the run


def _wait_for_lines(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {count} lines within {timeout:g} s")


def test_a_publisher_that_goes_away_is_noticed_reconnected_and_timed_truly(server, tmp_path):
    """The issue's scenario, shortened: the publisher stops for 5 s and comes back while the run goes on."""
    read_timeout, outage = 2.0, 5.0
    out = tmp_path / "out"
    publisher = Publisher(server, "cam")
    publisher.start()
    run = subprocess.Popen(
        [sys.executable, str(REPO / "run_stream.py"), "--source", server.url("cam", SECRET), "--quiet",
         "--output", str(out / "annotated.mp4"), "--detections", str(out / "det.jsonl"),
         "--benchmark-log", str(out / "log.csv"), f"source.read_timeout={read_timeout}", f"output.dir={out}",
         *RANDOM_MODEL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(out / "det.jsonl", 25, 60)
        killed = publisher.stop()
        time.sleep(outage)
        restarted = publisher.start()
        lines_before = len((out / "det.jsonl").read_text().splitlines())
        _wait_for_lines(out / "det.jsonl", lines_before + 25, 30)
    finally:
        publisher.stop()
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr

    stall = next(line for line in stderr.splitlines() if "stopped delivering frames" in line)
    assert log_line_time(stall) - killed <= read_timeout + 1.0, stall
    reconnect = next(line for line in stderr.splitlines() if "reconnected after a" in line)
    reported_gap = float(re.search(r"after a ([\d.]+) s gap", reconnect).group(1))
    stamps = [json.loads(line)["timestamp"] for line in (out / "det.jsonl").read_text().splitlines()]
    true_gap = max(b - a for a, b in zip(stamps, stamps[1:]))  # capture times of the frames around the outage
    assert abs(reported_gap - true_gap) <= 1.0, (reported_gap, true_gap)
    assert restarted - killed - 0.5 <= reported_gap <= restarted - killed + 4.0

    record = json.loads(next(out.rglob("benchmark.json")).read_text())
    assert record["reconnects"] == 1 and abs(record["gap_seconds"] - reported_gap) < 0.1
    with av.open(str(out / "annotated.mp4")) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264"
        duration = float(video.duration / av.time_base)
    assert abs(duration - record["seconds"]) <= 0.05 * record["seconds"], (duration, record["seconds"])
    assert stamps[-1] <= duration <= stamps[-1] + 0.2
    written = [stdout, stderr, *(p.read_text() for p in out.rglob("*") if p.suffix in (".jsonl", ".json", ".csv"))]
    assert not any("hunter2" in text for text in written)
