"""Several sources in one run against a real RTSP server on loopback: two published streams and one file, one of
the publishers gone for 8 s while the others go on, served by one web view."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import pytest

from bench.rtsp_server import Publisher, RtspServer, missing_tools
from tests.conftest import RANDOM_MODEL, REPO, write_video

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {' and '.join(missing_tools())} "
                                "(Debian packages rtsp-server-perl and ffmpeg; .ci/run installs them)")
SECRET = "admin:hunter2secret"
OUTAGE = 8.0
SETTINGS = [*RANDOM_MODEL, "source.read_timeout=2.0", "output.codec=mjpg"]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.2)


def video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def metrics_sources(url: str) -> dict[str, float]:
    """``driving_detect_frames`` by its ``source`` label."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    return {s.labels["source"]: s.value for s in families["driving_detect_frames"].samples}


def test_two_streams_and_a_file_in_one_run_one_stream_goes_away_and_comes_back(tmp_path):
    clip = write_video(tmp_path / "clip.avi", frames=60)
    common = ["--benchmark-log", str(tmp_path / "log.csv"), *SETTINGS]
    alone = subprocess.run(
        [sys.executable, "-m", "commands.main", "stream", "--source", str(clip), "--out", str(tmp_path / "alone"),
         "--quiet", *common], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr
    out = tmp_path / "run"
    with RtspServer() as server, Publisher(server, "front") as front, Publisher(server, "rear") as rear:
        run = subprocess.Popen(
            [sys.executable, "-m", "commands.main", "stream", "--source", f"front={server.url('front', SECRET)}",
             "--source", f"rear={server.url('rear', SECRET)}", "--source", str(clip), "--out", str(out),
             "--serve", "127.0.0.1:0", "serve.linger=0", *common],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(run.stderr), daemon=True)
        reader.start()
        try:
            wait_for(lambda: any("serving http" in line for line in stderr), 120, "the web view was not served")
            url = re.search(r"serving (http://\S+/)", "".join(stderr)).group(1)
            wait_for(lambda: lines(out / "front" / "detections.jsonl") >= 20
                     and lines(out / "rear" / "detections.jsonl") >= 20, 120, "both streams did not run")
            rear.stop()
            wait_for(lambda: any("stopped delivering frames" in line for line in stderr), 10,
                     "the stalled stream was not noticed")
            front_before, rear_before = lines(out / "front" / "detections.jsonl"), lines(out / "rear" / "detections.jsonl")
            during = metrics_sources(url)
            time.sleep(OUTAGE - 3)
            front_after, rear_after = lines(out / "front" / "detections.jsonl"), lines(out / "rear" / "detections.jsonl")
            rear.start()
            wait_for(lambda: lines(out / "rear" / "detections.jsonl") >= rear_after + 20, 60,
                     "the stream that came back was not reconnected")
            after = metrics_sources(url)
            wait_for(lambda: lines(out / "clip" / "detections.jsonl") == 60, 120, "the file did not finish")
        finally:
            run.send_signal(signal.SIGINT)
            stdout = run.communicate(timeout=60)[0]
            reader.join(10)
    assert run.returncode == 0, "".join(stderr)

    assert front_after >= front_before + 10  # the other stream went on during the outage
    assert rear_after <= rear_before + 2     # (what was in flight when it stopped)
    assert set(during) == set(after) == {"front", "rear", "clip"}
    assert after["rear"] > during["rear"] and after["front"] > during["front"]
    assert any("rear" in line and "reconnected after a" in line for line in stderr)

    # the file's detections are those of a run of it alone; every source's outputs are complete
    assert (out / "clip" / "detections.jsonl").read_text() == (tmp_path / "alone" / "detections.jsonl").read_text()
    records = {}
    for name in ("front", "rear", "clip"):
        folder = out / name
        records[name] = json.loads((folder / "benchmark.json").read_text())
        assert records[name]["frames"] == lines(folder / "detections.jsonl") == video_frames(folder / "annotated.mp4")
    assert records["rear"]["reconnects"] >= 1 and records["front"]["reconnects"] == 0
    assert records["clip"]["ended"] == "complete" and records["clip"]["frames"] == 60
    total = json.loads((out / "run.json").read_text())
    assert total["frames"] == sum(r["frames"] for r in records.values()) and total["variant"] == "sources=3"
    written = [stdout, "".join(stderr), *(p.read_text() for p in out.rglob("*") if p.suffix in (".jsonl", ".json"))]
    assert not any("hunter2" in text for text in written)
