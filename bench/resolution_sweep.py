"""``run_stream.py`` at the resolutions dashcams record, variants side by side, from outside the process.

    python -m bench.resolution_sweep --source CLIP [--sizes 640x360,1280x720,1920x1080] [--frames 300]
        [--repeats 2] [--variant NAME=key=value,key=value ...] [--variant NAME@REPO=...]

The clip is scaled to each size once with ffmpeg (``-vf scale=W:H -c:v libx264 -crf 20``, as the real-time issue
defines its 1080p clip) into a temporary folder. Every variant then runs the whole command on every size
(interpreter, model load and video writing included: what a user waits for), the variants alternated within each
repeat so drift on a shared machine hits them alike. ``NAME@REPO`` runs another checkout's ``run_stream.py``
(e.g. a worktree of the last release) for a before/after in one run. FPS is the command's own summary figure;
the table gives the median and range per size and variant, and each variant's ratio to the first.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.clips import parse_sizes, scaled_clip
from bench.machine import cpu_description, load_average

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"(\d+) frames in ([\d.]+) s: ([\d.]+) fps")


def parse_variant(text: str) -> tuple[str, Path, list[str]]:
    """``NAME[@REPO]=k=v,k=v`` -> (name, repo, overrides)."""
    head, _, overrides = text.partition("=")
    name, _, repo = head.partition("@")
    return name, Path(repo) if repo else REPO, [o for o in overrides.split(",") if o]


def run_once(repo: Path, clip: Path, frames: int, overrides: list[str], out: Path) -> float:
    command = [sys.executable, str(repo / "run_stream.py"), "--source", str(clip), "--max-frames", str(frames),
               "--quiet", "--output", str(out / "v.mp4"), "--detections", str(out / "d.jsonl"), "--benchmark-log",
               str(out / "log.csv"), *overrides]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    found = SUMMARY.search(result.stdout)
    if result.returncode or not found:
        raise SystemExit(f"error: {' '.join(command)} failed: {(result.stderr or result.stdout)[-800:]}")
    return float(found.group(3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the clip to scale to each size")
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME[@REPO]=key=value,... (default: one variant, 'default', this checkout)")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant] or [("default", REPO, [])]
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cpus']} CPUs, SIMD flags: {cpu['simd_flags']}; load {load_average()}")
    sizes = parse_sizes(args.sizes)
    fps: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = {size: scaled_clip(Path(args.source), size, args.frames, folder) for size in sizes}
        for repeat in range(args.repeats):
            for size in sizes:
                for name, repo, overrides in variants:
                    value = run_once(repo, clips[size], args.frames, overrides, folder / "out")
                    fps.setdefault((size, name), []).append(value)
                    print(f"repeat {repeat + 1}: {size} {name}: {value:.2f} fps", flush=True)
    print(f"load after: {load_average()}")
    first = variants[0][0]
    print(f"{'size':>10} {'variant':>16} {'FPS median':>11} {'range':>13} {'vs ' + first:>10}")
    for size in sizes:
        base = statistics.median(fps[(size, first)])
        for name, _, _ in variants:
            values = fps[(size, name)]
            median = statistics.median(values)
            print(f"{size:>10} {name:>16} {median:11.2f} {min(values):6.2f}-{max(values):<6.2f} "
                  f"{median / base:9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
