"""A clip at the resolutions dashcams record: the one way the benchmarks scale a source (``WxH`` sizes)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SAMPLE_SCRIPT = Path(__file__).resolve().parent.parent / "samples" / "make_sample.py"


def sample_renderer() -> ModuleType:
    """``samples/make_sample.py`` (the synthetic clip's renderer) as a module: ``samples/`` is a folder of scripts,
    not a package, and the tests and the docs' pictures draw scenes with it."""
    spec = importlib.util.spec_from_file_location("make_sample", SAMPLE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


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


def size_pair(size: str) -> tuple[int, int]:
    """``"640x360"`` (as `parse_sizes` gives it) -> ``(640, 360)``."""
    width, _, height = size.partition("x")
    return int(width), int(height)


def scaled_clip(source: Path, size: str, frames: int | None, folder: Path) -> Path:
    """The first ``frames`` of ``source`` (``None``: all of it) scaled to ``size`` by ffmpeg as the real-time issue
    defines its 1080p clip (``-vf scale=W:H -c:v libx264 -crf 20``), made once into ``folder``."""
    out = folder / f"{source.stem}-{size}.mp4"
    if not out.exists():
        width, height = size.split("x")
        first = ["-frames:v", str(frames)] if frames is not None else []
        result = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), *first, "-vf",
                                 f"scale={width}:{height}", "-c:v", "libx264", "-crf", "20", str(out)],
                                capture_output=True, text=True)
        if result.returncode:
            raise ValueError(f"ffmpeg could not scale '{source}' to {size}: {result.stderr.strip()[-300:]}")
    return out
