"""The live-source acceptance scenario, end to end, printing what a user would check by hand.

A real RTSP server on loopback, ffmpeg publishing a clip in real time, ``run_stream.py`` reading it with
credentials in the URL; the publisher is stopped for ``--outage`` seconds and restarted. Printed: how soon the
stall was noticed, the gap the log reported against the gap in the frames' capture times, the H.264 video's
duration against the run's wall-clock time, drops and reconnects from the record, and whether the password
appeared in any output.

    python -m bench.live_scenario --clip ../shared/data/videos/tmo324_lane_detecting/seattlestreet1.mp4
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from bench.machine import cpu_description
from bench.rtsp_server import Publisher, RtspServer
from core.log import log_line_time

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "pw-never-shown"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def run(clip: Path | None, max_frames: int, kill_after: float, outage: float, overrides: list[str]) -> dict:
    with RtspServer() as server, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        publisher = Publisher(server, "live", clip)
        publisher.start()
        command = [sys.executable, str(REPO / "run_stream.py"), "--source", server.url("live", f"admin:{PASSWORD}"),
                   "--max-frames", str(max_frames), "--output", str(out / "annotated.mp4"),
                   "--detections", str(out / "det.jsonl"), "--benchmark-log", str(out / "log.csv"),
                   f"output.dir={out}", *overrides]
        started = time.time()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while _lines(out / "det.jsonl") < 10 or time.time() - started < kill_after:
                time.sleep(0.1)  # until frames flow (the model loads first)
            killed = publisher.stop()
            time.sleep(outage)
            restarted = publisher.start()
            stdout, stderr = proc.communicate(timeout=600)
            ended = time.time()
        finally:
            publisher.stop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(30)
        lines = stderr.splitlines()
        stall = next((line for line in lines if "stopped delivering frames" in line), None)
        reconnect = next((line for line in lines if "reconnected after a" in line), None)
        rows = [json.loads(line) for line in (out / "det.jsonl").read_text().splitlines()]
        if len(rows) < 2:
            raise SystemExit(f"the run wrote {len(rows)} frames (exit {proc.returncode}):\n{stderr[-2000:]}")
        stamps = [row["timestamp"] for row in rows]
        gap_at = max(range(1, len(stamps)), key=lambda i: stamps[i] - stamps[i - 1])
        # capture time minus the stream's own time: growing means frames reach us ever later than sent
        lag = [round(row["timestamp"] - row["source_timestamp"], 2) for row in rows[:gap_at]]
        record = json.loads(next(out.rglob("benchmark.json")).read_text())
        with av.open(str(out / "annotated.mp4")) as video:
            codec = video.streams.video[0].codec_context.name
            duration = float(video.duration / av.time_base)
        texts = [stdout, stderr, *(p.read_text() for p in out.rglob("*") if p.suffix in (".jsonl", ".json", ".csv"))]
        return {
            "exit_code": proc.returncode, "wall_seconds": round(ended - started, 2),
            "stall_noticed_after_kill_s": round(log_line_time(stall) - killed, 2) if stall else None,
            "publisher_down_s": round(restarted - killed, 2),
            "reported_gap_s": float(re.search(r"after a ([\d.]+) s gap", reconnect).group(1)) if reconnect else None,
            "gap_in_capture_times_s": round(max(b - a for a, b in zip(stamps, stamps[1:])), 2),
            "capture_minus_stream_time_s": {"first": lag[0], "last_before_outage": lag[-1]},
            "video_codec": codec, "video_seconds": round(duration, 2), "run_seconds": record["seconds"],
            "frames_written": record["frames"], "dropped": record["dropped"], "reconnects": record["reconnects"],
            "gap_seconds": record["gap_seconds"], "latency_ms": record["latency"], "fps": record["fps"],
            "password_in_output": any(PASSWORD in text for text in texts),
            "log": [line for line in lines if "WARNING" in line or "ERROR" in line],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="clip to publish (looped); default: a generated test pattern")
    parser.add_argument("--max-frames", type=int, default=400)
    parser.add_argument("--kill-after", type=float, default=6.0, help="seconds into the run (at the earliest: once frames flow) the publisher stops")
    parser.add_argument("--outage", type=float, default=8.0, help="seconds the publisher stays away")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    result = run(args.clip, args.max_frames, args.kill_after, args.outage, args.overrides)
    cpu = cpu_description()
    print(f"{cpu['model']} ({cpu['cpus']} CPUs; {cpu['simd_flags']})")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
