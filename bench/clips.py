"""A clip at the resolutions dashcams record: the one way the benchmarks scale a source (``WxH`` sizes)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def parse_sizes(text: str) -> list[str]:
    """``"640x360,1920x1080"`` -> ``["640x360", "1920x1080"]``; a malformed or non-positive size is a ValueError."""
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    for size in sizes:
        width, _, height = size.partition("x")
        if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
            raise ValueError(f"'{size}' is not a size WIDTHxHEIGHT")
    if not sizes:
        raise ValueError("no size given")
    return list(dict.fromkeys(sizes))


def scaled_clip(source: Path, size: str, frames: int, folder: Path) -> Path:
    """The first ``frames`` of ``source`` scaled to ``size`` by ffmpeg as the real-time issue defines its 1080p
    clip (``-vf scale=W:H -c:v libx264 -crf 20``), made once into ``folder``."""
    out = folder / f"{source.stem}-{size}.mp4"
    if not out.exists():
        width, height = size.split("x")
        result = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-frames:v", str(frames), "-vf",
                                 f"scale={width}:{height}", "-c:v", "libx264", "-crf", "20", str(out)],
                                capture_output=True, text=True)
        if result.returncode:
            raise ValueError(f"ffmpeg could not scale '{source}' to {size}: {result.stderr.strip()[-300:]}")
    return out
