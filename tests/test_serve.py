"""The live web view (``--serve``): a real run served to a real headless Chromium, its metrics at the end of the
file, the token rules, the viewer cap, a stalled client, and the pieces (hub, histograms, address rules)."""
from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import run_stream
from core.config import ConfigError, to_dict
from serve.hub import FrameHub
from core.detections import Detections
from core.labels import LABEL_IDS
from serve.live import BUCKETS, Histogram, LiveRun, ProcessUsage, by_class
from serve.server import is_loopback, parse_address, plan_serving
from stream.config import ServeConfig, load_pipeline_config
from stream.frames import Frame
from stream.timing import StageTimer
from tests.conftest import RANDOM_MODEL, REPO, write_video

TOKEN = "s3cret-token-for-tests"
FRAMES = 1200  # the served clip: long enough for Chromium to see it running, on a loaded EPYC or a fast Xeon


@dataclass
class ServedRun:
    process: subprocess.Popen
    url: str
    detections: Path
    record: Path
    stderr: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path.lstrip("/"), headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self, query: str = "") -> dict:
        code, body = self.get("api/status" + query)
        assert code == 200, body
        return json.loads(body)

    def wait_for_state(self, state: str, timeout: float = 90, query: str = "") -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.status(query)
            if status["state"] == state:
                return status
            time.sleep(0.2)
        raise AssertionError(f"the run did not reach state {state!r} within {timeout} s")

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit code and stdout."""
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        return self.process.returncode, out


def start_run(tmp_path: Path, frames: int, *extra: str) -> ServedRun:
    """``run_stream.py`` on a generated clip with ``extra`` flags, once its log names the URL it serves."""
    source = write_video(tmp_path / "clip.avi", frames=frames)
    out = tmp_path / "out"
    stderr = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "run_stream.py"), "--source", str(source), "--no-video",
         "--detections", str(out / "d.jsonl"), "--benchmark-log", str(tmp_path / "log.csv"), *extra, *RANDOM_MODEL,
         f"output.dir={tmp_path / 'outputs'}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True)
    deadline = time.time() + 90
    while time.time() < deadline and process.poll() is None:
        found = re.search(r"serving (http://\S+?/)", stderr.read_text())
        if found:
            return ServedRun(process, found.group(1), out / "d.jsonl", out / "benchmark.json",
                             stderr)
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"no serving line: {stderr.read_text()[-2000:]}")


def stalled_client(url: str, path: str) -> socket.socket:
    """A client that asks for ``path`` and never reads a byte of the answer."""
    host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return client


def first_mjpeg_part(url: str, path: str) -> tuple[int, str, bytes]:
    """Status, content type and the first JPEG of an MJPEG response (or the error body)."""
    host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    connection.request("GET", path)
    response = connection.getresponse()
    if response.status != 200:
        return response.status, response.getheader("Content-Type"), response.read()
    data = b""
    while b"\xff\xd9" not in data:
        data += response.read1(65536)
    connection.close()
    start = data.index(b"\xff\xd8")
    return response.status, response.getheader("Content-Type"), data[start:data.index(b"\xff\xd9") + 2]


def wait_until(condition, timeout: float = 10) -> bool:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def viewers(run: ServedRun) -> float:
    """The viewers gauge of ``/metrics`` (live; the status is fixed once the run is over)."""
    from prometheus_client.parser import text_string_to_metric_families

    code, body = run.get(f"/metrics?token={TOKEN}")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    return families["driving_detect_viewers"].samples[0].value


# ---------------------------------------------------------------- a served run in a real headless Chromium

@pytest.fixture(scope="module")
def served(browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedRun, socket.socket]]:
    """A FRAMES-frame file run served on a free loopback port, with a client that connected to the stream and stopped
    reading from the start; it stays served after the file until Ctrl-C (the last test sends it)."""
    run = start_run(tmp_path_factory.mktemp("served"), FRAMES, "--serve", "127.0.0.1:0", "serve.linger=120")
    stalled = stalled_client(run.url, "/stream.mjpg")
    yield run, stalled
    stalled.close()
    if run.process.poll() is None:
        run.process.kill()
        run.process.communicate()


def test_api_status_mid_run_has_progress_eta_what_ran_p95_cpu_memory_and_objects(served):
    run, _ = served
    deadline = time.time() + 90
    while (status := run.status())["progress"]["eta_seconds"] is None:  # the first ticks have no recent FPS yet
        assert time.time() < deadline and status["state"] in ("starting", "running"), status["state"]
        time.sleep(0.2)
    progress = status["progress"]
    assert status["state"] == "running" and progress["total"] == FRAMES == status["source_frames"]
    assert 0 < progress["frames"] < FRAMES and progress["percent"] == round(100 * progress["frames"] / FRAMES, 1)
    assert progress["eta_seconds"] == round((FRAMES - progress["frames"]) / status["fps_recent"], 1) > 0
    assert progress["elapsed_seconds"] > 0
    assert status["precision"] == "fp32" and status["backend"] == "torch" and status["workers"] >= 1
    assert status["threads"] >= 1 and status["latency"]["p95"] >= status["latency"]["p50"] > 0
    assert status["cpu_percent"] > 0 and status["memory_bytes"] > 50e6 and status["cpus"] >= 1
    assert set(status["objects_seen"]) == set(status["objects_in_view"]) == set(status["detections_by_class"])
    assert all(n >= 0 for n in [*status["objects_seen"].values(), *status["objects_in_view"].values()])


def test_dashboard_in_chromium_shows_the_live_stream_and_the_figures_of_api_status(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run, _ = served
    browser.get(run.url)
    image = browser.find_element(By.ID, "stream")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    first = image.screenshot_as_png
    time.sleep(0.8)
    second = image.screenshot_as_png
    assert run.status()["state"] == "running", "the clip ended before the second screenshot; lengthen it"
    assert first != second, "the stream image did not change between two screenshots"

    def text(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    def page_tick(driver) -> int:
        return int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-tick") or -1)

    for _ in range(20):  # the page shows the status of one tick; compare it with /api/status of the same tick
        status = run.status()
        WebDriverWait(browser, 10).until(lambda d: page_tick(d) >= status["tick"])
        if page_tick(browser) == status["tick"] and status["progress"]["eta_seconds"] is not None:
            assert float(text("fps")) == status["fps"] > 0
            assert text("frames") == f"{status['frames']} of {FRAMES}"
            assert re.fullmatch(r"ETA \d+:\d\d · elapsed \d+:\d\d", text("eta"))
            assert text("latency-p95") == f"{status['latency']['p95']:.0f} ms"
            workers = status["workers"]  # threads: 1 per worker with auto workers
            assert text("layout") == (f"torch fp32 on cpu · {workers} worker{'s' * (workers > 1)} × 1 thread · input "
                                      f"{status['input_size']} · top-N 20")
            assert re.fullmatch(r"\d+ %", text("cpu")) and text("cpus") == f"of {status['cpus'] * 100} %"
            assert re.fullmatch(r"\d+(\.\d\d GiB| MiB)", text("memory"))
            break
    else:
        pytest.fail("the page never showed a running tick /api/status was at")
    viewers = re.fullmatch(r"viewers (\d+) of 4", text("viewers"))
    assert viewers and int(viewers.group(1)) >= 1  # this page's <img> plays the stream (and the stalled client)
    assert "update #" not in browser.find_element(By.TAG_NAME, "body").text
    assert text("objects-note") == "objects: confirmed tracks; seen: each once"
    final = run.wait_for_state("finished")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "state").text == "finished")
    record = json.loads(run.record.read_text())
    assert float(text("fps")) == final["fps"] == record["fps"]
    assert text("frames") == f"{FRAMES} of {FRAMES}" and text("percent") == "(100 %)"
    assert text("eta").startswith("elapsed ")
    browser.save_screenshot(str(run.record.parent / "dashboard.png"))


def test_metrics_at_the_end_of_a_file_run_count_every_jsonl_line(served):
    from prometheus_client.parser import text_string_to_metric_families

    run, _ = served
    final = run.wait_for_state("finished")
    code, body = run.get("metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    lines = len(run.detections.read_text().splitlines())
    frames = families["driving_detect_frames"]
    assert frames.type == "counter" and frames.samples[0].value == lines == final["frames"] == FRAMES
    assert families["driving_detect_source_up"].samples[0].value == 0  # the file is over
    end_to_end = {s.labels.get("le"): s.value for s in families["driving_detect_end_to_end_latency_seconds"].samples
                  if s.name.endswith("_bucket")}
    assert end_to_end["+Inf"] == FRAMES
    stages = {s.labels["stage"] for s in families["driving_detect_stage_latency_seconds"].samples}
    assert {"capture", "inference", "nms", "render", "sink"} <= stages
    assert {"capture", "render"} <= {s.labels["queue"] for s in families["driving_detect_queue_depth"].samples}
    assert families["driving_detect_dropped"].samples[0].value == 0  # the web sink never drops a frame
    assert final["progress"] | {"elapsed_seconds": 0} == {"frames": FRAMES, "total": FRAMES, "percent": 100.0,
                                                          "eta_seconds": None, "elapsed_seconds": 0}
    assert sum(final["objects_seen"].values()) == final["tracks"]  # each confirmed track once
    seen = {s.labels["class"]: s.value for s in families["driving_detect_objects_seen"].samples}
    assert seen == final["objects_seen"]
    assert {s.labels["class"] for s in families["driving_detect_objects_in_view"].samples} == set(seen)
    cpu, memory = families["process_cpu_seconds"], families["process_resident_memory_bytes"]  # the process collector
    assert cpu.type == "counter" and cpu.samples[0].name == "process_cpu_seconds_total" and cpu.samples[0].value > 0
    assert memory.type == "gauge" and memory.samples[0].value > 50e6  # a process that loaded torch


def test_ctrl_c_while_the_final_numbers_are_served_closes_the_server_with_a_stalled_client_attached(served):
    run, stalled = served
    started = time.perf_counter()
    code, out = run.stop()
    assert code == 0 and f"{FRAMES} frames" in out
    assert time.perf_counter() - started < 15
    assert "web view closed" in run.stderr.read_text()
    with pytest.raises(OSError):
        urllib.request.urlopen(run.url + "api/status", timeout=5)
    stalled.settimeout(5)
    assert stalled.recv(1 << 20)  # the stream did start for it; the run never waited on it


def test_a_page_opened_after_the_run_shows_the_last_frame_and_counts_itself_as_its_viewer(browser, tmp_path):
    """The status is built once a tick and fixed when the run ends, but its viewer count must be the current one
    (the page playing the stream showed "viewers 0 of 4"); and a browser shows an MJPEG part only once it has the
    next part's headers, so the stream sends them right after each frame, or the run's last frame never shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from serve.server import ServePlan, WebView
    from stream.pipeline import Outputs
    from stream.run import build_pipeline, run_pipeline

    cfg = load_pipeline_config(None, [*RANDOM_MODEL, "serve.linger=60"])
    pipeline = build_pipeline(cfg, str(write_video(tmp_path / "clip.avi", frames=20)),
                              Outputs(video=None, detections=tmp_path / "d.jsonl"), progress=False)
    shown: list[str] = []
    failures: list[BaseException] = []

    def watch(url: str) -> None:  # runs while the main thread lingers in the view's exit
        try:
            deadline = time.time() + 30
            while json.loads(urllib.request.urlopen(url + "api/status", timeout=5).read())["state"] != "finished":
                assert time.time() < deadline, "the run did not finish"
                time.sleep(0.1)  # the final status is built now, before the page connects
            browser.get(url)
            WebDriverWait(browser, 30).until(lambda d: d.execute_script(
                "const image = document.getElementById('stream'); return image && image.naturalWidth > 0"))
            viewers = browser.find_element(By.ID, "viewers")
            WebDriverWait(browser, 10).until(lambda _: viewers.text.startswith("viewers 1 "))
            shown.append(viewers.text)
        except BaseException as exc:  # noqa: BLE001 - raised again on the test's thread
            failures.append(exc)
        finally:
            pipeline.request_stop()  # ends the linger

    with WebView([pipeline], ServePlan("127.0.0.1", 0, None)) as view:
        run_pipeline(pipeline)
        watcher = threading.Thread(target=watch, args=(view.url,))
        watcher.start()
    watcher.join()
    if failures:
        raise failures[0]
    assert shown == ["viewers 1 of 4"]


# ---------------------------------------------------------------- the token, on a non-loopback bind

def test_non_loopback_bind_without_a_token_is_refused_with_one_error_line(tmp_path, capsys):
    source = write_video(tmp_path / "clip.avi", frames=2)
    assert run_stream.main(["--source", str(source), "--serve", "0.0.0.0:0", "--quiet", *RANDOM_MODEL,
                            f"output.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "token" in err[0], err
    assert not (tmp_path / "clip").exists()  # refused before the run


def test_with_a_token_every_request_without_it_gets_401_and_the_rest_works(tmp_path):
    run = start_run(tmp_path, 40, "--serve", "0.0.0.0:0", f"serve.token={TOKEN}", "serve.max_clients=1",
                    "serve.linger=60")
    run.url = re.sub(r"//[^:/]+:", "//127.0.0.1:", run.url)
    try:
        for path in ("/", "/stream.mjpg", "/api/status", "/metrics", "/nowhere"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                code, body = run.get(path, headers)
                assert (code, body) == (401, b"unauthorized\n"), (path, headers)
            assert run.get(path + "?token=wrong")[0] == 401
        assert run.get("/", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert run.get(f"/metrics?token={TOKEN}")[0] == 200
        status = run.wait_for_state("finished", query=f"?token={TOKEN}")
        assert status["config"]["serve"]["token"] == "***"
        assert TOKEN not in run.record.read_text() and TOKEN not in run.stderr.read_text()
        assert "?token=***" in run.stderr.read_text()
        watcher = stalled_client(run.url, f"/stream.mjpg?token={TOKEN}")
        assert wait_until(lambda: viewers(run) == 1)
        assert first_mjpeg_part(run.url, f"/stream.mjpg?token={TOKEN}")[0] == 503  # serve.max_clients=1
        watcher.close()
        assert wait_until(lambda: viewers(run) == 0)  # a vanished client frees its place
        code, kind, jpeg = first_mjpeg_part(run.url, f"/stream.mjpg?token={TOKEN}")
        assert code == 200 and kind.startswith("multipart/x-mixed-replace") and jpeg[:2] == b"\xff\xd8"
        assert run.get(f"/api/status?token={TOKEN}")[0] == 200
    finally:
        assert run.stop()[0] == 0


# ---------------------------------------------------------------- the pieces

def test_address_rules_and_generated_tokens():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("x", "host:", "1:70000", "-1"):
        with pytest.raises(ConfigError):
            parse_address(bad)
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert plan_serving("8080", None).token is None
    with pytest.raises(ConfigError, match="token"):
        plan_serving("0.0.0.0:8080", None)
    generated = plan_serving("0.0.0.0:8080", "auto")
    assert generated.generated and len(generated.token) >= 32 and generated.token != plan_serving("1", "auto").token


def test_a_token_in_the_config_is_written_as_stars():
    cfg = load_pipeline_config(None, [f"serve.token={TOKEN}"])
    assert cfg.serve.token == TOKEN and to_dict(cfg)["serve"]["token"] == "***"
    assert to_dict(load_pipeline_config())["serve"]["token"] is None


def test_hub_encodes_only_while_someone_watches_and_at_most_at_its_rate():
    hub = FrameHub(fps=5, quality=80)
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(20):
        hub.publish(frame + i)
    time.sleep(0.2)
    assert hub.encoded == 0 and hub.jpeg() == (0, b"")
    hub.add_viewer()
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        hub.publish(frame + 1)
        time.sleep(0.01)
    hub.remove_viewer()
    hub.close()
    assert 3 <= hub.encoded <= 7  # 5 per second, not one per frame (about 100 were published)
    seq, jpeg = hub.jpeg()
    assert seq > 20 and jpeg[:2] == b"\xff\xd8"


def test_histogram_takes_each_duration_once_in_prometheus_buckets():
    timer, histogram = StageTimer("x", window=4), Histogram()
    for seconds in (0.0005, 0.003, 0.003, 20.0):
        timer.add(seconds)
    histogram.absorb(timer)
    histogram.absorb(timer)  # nothing new: nothing counted twice
    buckets = dict(histogram.buckets())
    assert buckets["0.001"] == 1 and buckets["0.005"] == 3 and buckets[str(BUCKETS[-1])] == 3 and buckets["+Inf"] == 4
    timer.add(0.001)  # le is inclusive
    histogram.absorb(timer)
    assert dict(histogram.buckets())["0.001"] == 2 and histogram.count == 5
    assert histogram.sum == pytest.approx(20.0075)


def test_objects_seen_count_each_confirmed_track_once_and_in_view_the_confirmed_ones_of_the_newest_frame():
    hub = FrameHub(fps=5, quality=80)
    live = LiveRun(SimpleNamespace(tracked=True, source_id="clip"), ServeConfig(), hub)
    car, person = LABEL_IDS["car"], LABEL_IDS["person"]
    image = np.zeros((48, 64, 3), np.uint8)

    def frame(labels: list[int], ids: list[int] | None) -> Frame:
        boxes = np.tile([1.0, 2.0, 10.0, 12.0], (len(labels), 1))
        return Frame(0, 0.0, 0.0, image, detections=Detections(boxes, np.ones(len(labels)), labels, ids))

    for labels, ids in (([car, car, person], [-1, -1, -1]),  # no confirmed track: no object
                        ([car, car, person], [3, -1, 7]),
                        ([car, car, person], [3, 4, 7]),  # track 3 again: not counted again
                        ([person, car, car], [3, 5, -1])):  # a track that changed class stays counted once, as a car
        live.on_frame(frame(labels, ids))
    assert {k: v for k, v in by_class(live.objects_seen).items() if v} == {"car": 3, "person": 1}
    assert {k: v for k, v in by_class(live.in_view).items() if v} == {"car": 1, "person": 1}
    live.on_frame(frame([car, car, person], None))  # untracked: every box is an object in view
    hub.close()
    assert {k: v for k, v in by_class(live.in_view).items() if v} == {"car": 2, "person": 1}
    assert live.detections[car] == 10 and live.detections[person] == 5  # boxes over all frames, as before


def test_progress_is_frames_of_the_expected_with_an_eta_while_running_and_only_elapsed_for_a_live_source():
    from stream.pipeline import Pipeline

    def expected(frame_count: int | None, max_frames: int | None) -> int | None:
        return Pipeline.expected_frames.fget(SimpleNamespace(source=SimpleNamespace(
            info=SimpleNamespace(frame_count=frame_count)), max_frames=max_frames))

    assert (expected(1044, None), expected(1044, 100), expected(50, 100), expected(None, 100)) == (1044, 100, 50, 100)
    assert expected(None, None) is None  # a live source without --max-frames
    hub = FrameHub(fps=5, quality=80)
    live = LiveRun(SimpleNamespace(tracked=False, source_id="clip", expected_frames=1044), ServeConfig(), hub)
    live.state, live.fps_recent, live.elapsed = "running", 12.5, 8.4
    assert live.progress(105) == {"frames": 105, "total": 1044, "percent": 10.1, "eta_seconds": 75.1,
                                  "elapsed_seconds": 8.4}
    live.state = "finished"
    assert live.progress(1044)["eta_seconds"] is None
    live = LiveRun(SimpleNamespace(tracked=False, source_id="cam0", expected_frames=None), ServeConfig(), hub)
    live.state, live.fps_recent = "running", 25.0
    assert live.progress(300) | {"elapsed_seconds": None} == {"frames": 300, "total": None, "percent": None,
                                                             "eta_seconds": None, "elapsed_seconds": None}
    hub.close()


def test_process_usage_is_cpu_percent_of_one_cpu_between_samples_and_resident_memory():
    usage = ProcessUsage()
    usage.sample(time.perf_counter())
    assert usage.cpu_percent is None and usage.memory_bytes > 50e6 and usage.cpus >= 1  # one sample: no CPU yet
    started = time.perf_counter()
    while time.perf_counter() - started < 0.5:  # one thread busy: up to 100 % (less when the machine is loaded)
        pass
    usage.sample(time.perf_counter())
    assert 10 < usage.cpu_percent <= 110


def test_a_failed_run_is_served_as_failed_for_the_linger_then_the_server_closes(tmp_path):
    from serve.server import ServePlan, WebView
    from stream.pipeline import Outputs
    from stream.run import build_pipeline, run_pipeline

    cfg = load_pipeline_config(None, [*RANDOM_MODEL, "serve.linger=2"])
    pipeline = build_pipeline(cfg, str(write_video(tmp_path / "clip.avi", frames=20)),
                              Outputs(video=None, detections=tmp_path / "d.jsonl"), progress=False)
    next(stage for stage in pipeline.stages if stage.name == "render").work = lambda frame: 1 / 0
    states: list[str] = []

    def watch(url: str) -> None:  # reads the status while the main thread lingers in the view's exit
        deadline = time.time() + 10
        while time.time() < deadline and "failed" not in states:
            with urllib.request.urlopen(url + "api/status", timeout=5) as response:
                states.append(json.loads(response.read())["state"])
            time.sleep(0.1)

    started = time.perf_counter()
    with WebView([pipeline], ServePlan("127.0.0.1", 0, None)) as view:
        _, failure = run_pipeline(pipeline)
        watcher = threading.Thread(target=watch, args=(view.url,))
        watcher.start()
    watcher.join()
    assert failure is not None and failure.stage == "render"
    assert states[-1] == "failed" and time.perf_counter() - started < 20
    with pytest.raises(OSError):
        urllib.request.urlopen(view.url + "api/status", timeout=5)
