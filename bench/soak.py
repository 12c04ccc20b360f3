"""Soak: the default pipeline on a live RTSP source for minutes, sampling memory and latency once a second.

A real RTSP server on loopback with ffmpeg publishing a clip in a loop (`bench.rtsp_server`), the pipeline
built exactly as ``driving-detect stream`` builds it (`stream.run`), annotated H.264 video and JSONL written.
Each second: resident memory, frames written, end-to-end latency p95 of that second's frames, dropped frames.
Writes ``soak.csv`` and ``soak.png`` to ``--out`` and prints the first- and last-minute medians: a leak or a
queue that grows shows as a rising line.

    python -m bench.soak --minutes 10 --clip ../shared/data/videos/tmo324_lane_detecting/seattlestreet1.mp4
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.machine import cpu_description
from bench.rtsp_server import Publisher, RtspServer
from core.log import setup_logging
from stream.config import load_pipeline_config
from stream.pipeline import Pipeline
from stream.record import write_table
from stream.run import build_pipeline, default_outputs, run_pipeline

log = logging.getLogger(__name__)


def rss_mb() -> float:
    """This process's resident memory (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample(pipeline: Pipeline, seconds: float, rows: list[dict[str, float]]) -> None:
    """Once a second until ``seconds`` have passed, then stop the pipeline."""
    started = time.monotonic()
    written = 0
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(1.0 - (elapsed % 1.0))
        stats = pipeline.stats
        now_written = stats.written
        new = now_written - written
        recent = stats.latency.snapshot()[-new:] if new else np.empty(0)
        rows.append({"t": round(time.monotonic() - started, 1), "rss_mb": round(rss_mb(), 1), "fps": new,
                     "latency_p95_ms": round(float(np.percentile(recent, 95)), 1) if new else float("nan"),
                     "dropped": stats.dropped, "reconnects": stats.reconnects})
        written = now_written
    pipeline.request_stop()


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    minutes = [float(row["t"]) / 60 for row in rows]
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    panels = fig.subplots(3, 1, sharex=True)
    for ax, key, label in zip(panels, ("rss_mb", "latency_p95_ms", "fps"),
                              ("resident memory (MB)", "end-to-end latency p95 (ms)", "frames written per s")):
        values = [float(row[key]) for row in rows]
        ax.plot(minutes, values, lw=1)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.15 * np.nanmax(values))
        ax.grid(alpha=0.3)
    panels[-1].set_xlabel("minutes")
    panels[0].set_title(title)
    fig.savefig(path, dpi=110)


def minute_median(rows: list[dict[str, float]], key: str, last: bool) -> float:
    window = rows[-60:] if last else rows[:60]
    return statistics.median(row[key] for row in window if row[key] == row[key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip", type=Path, help="clip to publish in a loop (default: a generated pattern)")
    parser.add_argument("--out", type=Path, default=Path("docs/soak"))
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    setup_logging(quiet=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, float]] = []
    with RtspServer() as server, Publisher(server, "soak", args.clip), tempfile.TemporaryDirectory() as tmp:
        spec = server.url("soak", "admin:soak-password")
        cfg = load_pipeline_config(None, [f"output.dir={tmp}", *args.overrides])
        outputs = default_outputs(cfg, spec, out_dir=tmp, benchmark_log=Path(tmp) / "log.csv")
        pipeline = build_pipeline(cfg, spec, outputs, progress=False)
        sampler = threading.Thread(target=sample, args=(pipeline, args.minutes * 60, rows), daemon=True)
        sampler.start()
        record, failure = run_pipeline(pipeline)
    if failure is not None:
        raise SystemExit(f"error: {failure}")
    write_table(args.out / "soak.csv", rows)
    cpu = cpu_description()
    plot(rows, args.out / "soak.png", f"{args.minutes:g} min live RTSP soak, {record.backend}, {cpu['model']}")
    print(f"{cpu['model']} ({cpu['cpus']} CPUs; {cpu['simd_flags']})")
    print(f"{record.frames} frames in {record.seconds:.0f} s ({record.fps:.2f} FPS), dropped {record.dropped}, "
          f"reconnects {record.reconnects}; latency p50 {record.latency['p50']:.0f} ms, p95 {record.latency['p95']:.0f} ms")
    for key in ("rss_mb", "latency_p95_ms", "fps"):
        print(f"{key}: first minute median {minute_median(rows, key, False):.1f}, "
              f"last minute median {minute_median(rows, key, True):.1f}")
    print(f"wrote {args.out / 'soak.csv'} and {args.out / 'soak.png'}")


if __name__ == "__main__":
    main()
