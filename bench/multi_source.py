"""Several sources in one process against as many separate processes: total throughput, CPU and memory.

    python bench/multi_source.py [--clip FILE] [--sources 1 2 4] [--max-frames 150] [--out DIR] [key=value ...]

For each N: one ``driving-detect stream`` with N ``--source`` options (one model, its inference workers shared
round-robin), then N ``driving-detect stream`` processes started together, one source each (N models, each
process sizing its workers to the whole machine, as N commands in N shells would). Every source is the same
clip, read to ``--max-frames`` frames, lossless (a file), without video, so the frames are the same work in both.

Reported per N and layout: frames summed; FPS in all, frames over the processing window (from the first
record's start to the last one's end: a record's file is written as its run ends, and says how long it ran,
so model loads are left out and separate processes that started apart are not counted as overlapping); wall
seconds of the whole command (model loads included); CPU ms a frame (user + system of the processes, from
``wait4``); memory (peak RSS of the one process, or the sum of the processes' peaks). Prints the CPU and the load average before
and after: other users of the machine skew every number, so run it on a quiet one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.machine import cpu_description, load_average

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "driving_sample.mp4"


@dataclass
class Layout:
    """One measured layout: ``sources`` sources in ``processes`` processes."""

    sources: int
    processes: int
    frames: int
    fps: float
    wall_seconds: float
    cpu_ms_per_frame: float
    memory_mb: float


def run_all(commands: list[list[str]]) -> tuple[float, float, float]:
    """Start ``commands`` together and wait for all: wall seconds, CPU seconds (user + system) and the sum of their
    peak resident memory in MB, each process's usage read by ``wait4`` when it ends."""
    started = time.perf_counter()
    processes = [subprocess.Popen(c, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
    cpu = memory = 0.0
    for process in processes:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            sys.exit(f"error: {' '.join(process.args)} failed:\n{process.stderr.read().decode()[-2000:]}")
        cpu += usage.ru_utime + usage.ru_stime
        memory += usage.ru_maxrss / 1024  # KiB on Linux
    return time.perf_counter() - started, cpu, memory


def processing_fps(records: list[Path]) -> tuple[int, float]:
    """Frames of ``records`` and their frames per second over the window from the earliest start to the latest
    end (end: the record file's modification time; start: that less the record's ``seconds``)."""
    spans = []
    frames = 0
    for path in records:
        record = json.loads(path.read_text())
        end = path.stat().st_mtime
        spans.append((end - record["seconds"], end))
        frames += record["frames"]
    window = max(end for _, end in spans) - min(start for start, _ in spans)
    return frames, frames / window if window > 0 else 0.0


def measure(clip: Path, count: int, together: bool, out: Path, common: list[str]) -> Layout:
    folder = out / f"{count}-{'one' if together else 'separate'}"
    stream = [sys.executable, "-m", "commands.main", "stream", *common, "--benchmark-log", str(folder / "log.csv")]
    if together:
        sources = [arg for i in range(count) for arg in ("--source", f"s{i}={clip}")]
        wall, cpu, memory = run_all([[*stream, *sources, "--out", str(folder)]])
        paths = [folder / ("run.json" if count > 1 else "benchmark.json")]
    else:
        wall, cpu, memory = run_all([[*stream, "--source", str(clip), "--out", str(folder / f"s{i}")]
                                     for i in range(count)])
        paths = [folder / f"s{i}" / "benchmark.json" for i in range(count)]
    frames, fps = processing_fps(paths)
    return Layout(count, 1 if together else count, frames, round(fps, 2), round(wall, 1),
                  round(cpu * 1000 / max(frames, 1), 1), round(memory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLE)
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--out", type=Path, help="results folder (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="multi-source-bench-"))
    common = ["--max-frames", str(args.max_frames), "--no-video", "--quiet", *args.overrides]
    print(f"CPU: {cpu_description()}; load average before: {load_average()}")
    run_all([[sys.executable, "-m", "commands.main", "stream", "--source", str(args.clip), *common,
              "--max-frames", "2", "--out", str(out / "warm-up"), "--benchmark-log", str(out / "warm-up.csv")]])
    rows = []
    for count in args.sources:
        for together in (True, False):
            if count == 1 and not together:
                continue  # one source in one process is the same layout
            rows.append(measure(args.clip, count, together, out, common))
            row = rows[-1]
            print(f"{row.sources} source(s) in {row.processes} process(es): {row.frames} frames, {row.fps:.2f} fps "
                  f"in all, {row.wall_seconds:.1f} s wall, {row.cpu_ms_per_frame:.1f} CPU ms/frame, "
                  f"{row.memory_mb:.0f} MB", flush=True)
    print(f"load average after: {load_average()}")
    (out / "multi_source.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(f"results: {out / 'multi_source.json'}")


if __name__ == "__main__":
    main()
