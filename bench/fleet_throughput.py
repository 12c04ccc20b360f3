"""Fleet throughput on this machine: N files through ``driving-detect batch`` with 1 worker x 2 threads and
2 workers x 1 thread, against the sum of N single ``run_stream.py`` runs (each its own process, model load
included, as a shell loop over the files would run them).

    python bench/fleet_throughput.py [--videos DIR] [--files 8] [--max-frames 60] [--out DIR] [key=value ...]

Every run is timed from outside (wall seconds for the whole command: interpreter start, model load, Ray start for
the fleet); the fleet's own record adds its processing-only FPS. The files are the first N videos under
``--videos`` (default: the shared data's), linked (not copied) into a temporary folder under unique names. A
warm-up run fills the export cache first so that no timed run pays for the graph export. Prints the CPU model,
its flags, and the load average before and after (other users of the machine skew every number).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import cpu_description, load_average

REPO = Path(__file__).resolve().parent.parent
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"
FLEETS = {"fleet 1 worker x 2 threads": ["--workers", "1", "batch.threads=2"],
          "fleet 2 workers x 1 thread": ["--workers", "2", "batch.threads=1"]}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--max-frames", type=int, default=60)
    parser.add_argument("--out", type=Path, help="results folder (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    videos = sorted(args.videos.rglob("*.mp4"))[:args.files]
    if len(videos) < args.files:
        sys.exit(f"error: {args.videos} holds {len(videos)} videos, fewer than --files {args.files}")
    inputs = out / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    for video in videos:
        link = inputs / f"{video.parent.name}_{video.name}"
        if not link.exists():
            link.symlink_to(video)
    files = sorted(inputs.iterdir())
    common = ["--max-frames", str(args.max_frames), "--no-video", "--quiet", *args.overrides]

    def single(path: Path, log: Path) -> list[str]:
        return [sys.executable, "run_stream.py", "--source", str(path), *common, "--benchmark-log", str(log),
                "--detections", str(out / "single" / path.name / "detections.jsonl"),
                f"output.dir={out / 'single'}"]

    cpu = cpu_description()
    before = load_average()
    timed(single(files[0], out / "warmup.csv"))  # export cache and page cache warm; not counted
    results = {"single run_stream.py runs (sum)": {
        "seconds": round(sum(timed(single(f, out / "single.csv")) for f in files), 2)}}
    for name, extra in FLEETS.items():
        folder = out / name.split()[1] / "out"
        seconds = timed([sys.executable, "-m", "commands.main", "batch", str(inputs), "--out", str(folder),
                         *common, *extra])
        record = json.loads((folder / "fleet.json").read_text())
        results[name] = {"seconds": round(seconds, 2), "processing_fps": record["fps"], "frames": record["frames"]}
    frames = results[next(iter(FLEETS))]["frames"]  # short clips end before --max-frames
    for row in results.values():
        row["throughput_fps"] = round(frames / row["seconds"], 2)
    summary = {"files": [f.name for f in files], "frames": frames, "results": results,
               "cpu": cpu["model"], "cores": cpu["cpus"], "flags": cpu["flags"],
               "load_before": before, "load_after": load_average(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                           time.gmtime())}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.files} files, up to {args.max_frames} frames each: {frames} frames; {summary['cpu']}, "
          f"{summary['cores']} CPUs; load average before {before}, after {summary['load_after']}")
    base = results["single run_stream.py runs (sum)"]["seconds"]
    for name, row in results.items():
        extra = f", processing-only {row['processing_fps']:.2f} fps" if "processing_fps" in row else ""
        print(f"{name:32s} {row['seconds']:7.1f} s  {row['throughput_fps']:6.2f} frames/s  "
              f"x{base / row['seconds']:.2f}{extra}")
    print(f"flags: {summary['flags']}")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
