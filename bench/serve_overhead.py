"""What the web view costs the pipeline: FPS without ``--serve``, served with 0 viewers, with one client that
connects to ``/stream.mjpg`` and stops reading, and with 2 viewers reading the stream.

The conditions alternate within each repeat (so drifting load on a shared machine hits them alike) and the
medians and spreads are printed with the CPU model, its flags and the load average before and after. The
pipeline runs in this process on the main thread, as ``driving-detect stream`` runs it; the reading viewers are
``curl`` processes, the stalled client a socket here that never reads, so no viewer competes for this GIL.
Besides FPS it reports this process's CPU time per frame (all its threads: pipeline, web sink, encoder,
server), which other programs on a shared machine disturb far less than they disturb FPS.

    python -m bench.serve_overhead [--source CLIP] [--max-frames N] [--repeats R] [--json OUT] [key=value ...]
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.machine import cpu_description
from detector.backend import Backend, build_backend
from serve.server import ServePlan, WebView
from stream.config import PipelineConfig
from stream.pipeline import Outputs
from stream.run import build_pipeline

CONDITIONS = ("off", "0 viewers", "stalled client", "2 viewers")
SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
SEATTLE = SHARED_VIDEOS / "tmo324_lane_detecting" / "seattlestreet1.mp4"


def stalled_client(url: str) -> socket.socket:
    """Connects to ``/stream.mjpg`` and never reads: the server's writes to it back up and stop."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    client.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return client


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the viewers did not connect")
        time.sleep(0.05)


def run_once(cfg: PipelineConfig, source: str, backend: Backend, condition: str, max_frames: int | None,
             folder: Path) -> dict[str, float]:
    """One pipeline run under ``condition``: its FPS, CPU ms per frame and the JPEGs the hub encoded."""
    outputs = Outputs(video=None, detections=folder / "detections.jsonl")
    pipeline = build_pipeline(cfg, source, outputs, backend=backend, max_frames=max_frames, progress=False)
    if condition == "off":
        cpu = time.process_time()
        record = pipeline.run()
        return {"fps": record.fps, "cpu_ms": (time.process_time() - cpu) * 1000 / record.frames, "jpegs": 0}
    with ExitStack() as stack:
        view = stack.enter_context(WebView([pipeline], ServePlan("127.0.0.1", 0, None)))
        if condition == "stalled client":
            stack.callback(stalled_client(view.url).close)
        elif condition == "2 viewers":
            for _ in range(2):
                curl = subprocess.Popen(["curl", "-s", "-N", "-o", os.devnull, view.url + "stream.mjpg"])
                stack.callback(curl.wait)
                stack.callback(curl.terminate)
        expected = {"0 viewers": 0, "stalled client": 1, "2 viewers": 2}[condition]
        wait_for(lambda: view.hub.viewers == expected)
        cpu = time.process_time()
        record = pipeline.run()
        cpu_ms = (time.process_time() - cpu) * 1000 / record.frames
        jpegs = view.hub.encoded
    return {"fps": record.fps, "cpu_ms": cpu_ms, "jpegs": jpegs}


def measure(cfg: PipelineConfig, source: str, repeats: int, max_frames: int | None) -> dict:
    """Every condition ``repeats`` times, alternating; FPS median and range per condition."""
    backend = build_backend(cfg.model)
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    with tempfile.TemporaryDirectory() as tmp:
        run_once(cfg, source, backend, "off", min(max_frames or 60, 60), Path(tmp))  # warm-up
        for _ in range(repeats):
            for condition in CONDITIONS:
                runs[condition].append(run_once(cfg, source, backend, condition, max_frames, Path(tmp)))
    load_after = os.getloadavg()
    base = statistics.median(r["fps"] for r in runs["0 viewers"])
    summary = {}
    for condition, results in runs.items():
        fps = [r["fps"] for r in results]
        summary[condition] = {"median_fps": round(statistics.median(fps), 2), "min_fps": min(fps),
                              "max_fps": max(fps), "vs_0_viewers": round(statistics.median(fps) / base, 3),
                              "median_cpu_ms_per_frame": round(statistics.median(r["cpu_ms"] for r in results), 2),
                              "jpegs_per_run": round(statistics.median(r["jpegs"] for r in results)),
                              "fps_runs": fps, "cpu_ms_runs": [round(r["cpu_ms"], 2) for r in results]}
    return {"source": source, "frames": max_frames, "repeats": repeats, "model": cfg.model.name,
            "backend": backend.name, "serve_fps_cap": cfg.serve.fps, "cpu": cpu_description(),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "conditions": summary}


def main() -> None:
    import argparse
    import logging

    from core.log import setup_logging
    from stream.config import load_pipeline_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SEATTLE))
    parser.add_argument("--max-frames", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    setup_logging(quiet=True)
    logging.getLogger("serve").setLevel(logging.WARNING)
    cfg = load_pipeline_config(None, ["serve.linger=0", *args.overrides])
    result = measure(cfg, args.source, args.repeats, args.max_frames)
    cpu = result["cpu"]
    print(f"{result['date']}  {cpu['model']} ({cpu['cpus']} CPUs; {cpu['simd_flags']})")
    print(f"{Path(args.source).name}, {args.max_frames} frames x {args.repeats} repeats, {result['model']} on "
          f"{result['backend']}, MJPEG cap {result['serve_fps_cap']:g} fps; load average before "
          f"{result['load_before']}, after {result['load_after']}")
    for condition, row in result["conditions"].items():
        print(f"  {condition:15s} median {row['median_fps']:6.2f} fps (range {row['min_fps']:.2f}-{row['max_fps']:.2f})"
              f"  {row['vs_0_viewers']:.3f}x of 0 viewers  CPU {row['median_cpu_ms_per_frame']:.1f} ms/frame"
              f"  {row['jpegs_per_run']} JPEGs/run")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
