"""``precision=auto`` by measurement: each candidate precision's graph timed on a few frames, once per machine.

A rule over instruction sets guessed wrong: on a Zen 3 EPYC without VNNI, int8 ran the pipeline 1.3x faster than
fp32 while the rule kept fp32 (issue 27). So when a backend offers more than one precision within our accuracy
bound (`detector.runtime.AUTO_PRECISION`), each is built (the export cache keeps the graphs), run on the same
frames in turns and the median time per frame decides. The result is cached beside the graphs, keyed by the model,
its weights, the backend, threads and the CPU, so later runs on this machine start without measuring.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from detector.config import ModelConfig
from detector.runtime import Machine, auto_candidates, device_kind, pick_backend

log = logging.getLogger(__name__)
TIMING_SIZE = (360, 640)  # (H, W): the frame size every speed in docs/benchmarks.md is compared at
WARMUP, ROUNDS, FRAMES = 2, 4, 3
TIMING_VERSION = 1


def timing_frames(count: int = FRAMES) -> list[np.ndarray]:
    """Reproducible BGR frames with structure (rectangles) for the RPN and box head to work on."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        frame = np.full((*TIMING_SIZE, 3), 90, np.uint8)
        for _ in range(20):
            y, x = rng.integers(0, TIMING_SIZE[0] - 20), rng.integers(0, TIMING_SIZE[1] - 20)
            h, w = rng.integers(10, TIMING_SIZE[0] // 3), rng.integers(10, TIMING_SIZE[1] // 3)
            frame[y:y + h, x:x + w] = rng.integers(0, 256, 3)
        frames.append(frame)
    return frames


def cpu_identity() -> str:
    """The CPU model and its flags (what sets int8 and bf16 speed), and the cores this process may use."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else platform.processor()
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))][:2]
    return f"{'|'.join(lines)}|cores={len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 0}"


def timing_key(cfg: ModelConfig, precisions: list[str]) -> str:
    """The cache entry's name: everything the measured times depend on."""
    from detector.export import EXPORTER_VERSION, fp32_nodes
    from detector.export_cache import file_sha256
    from detector.weights import weights_file

    weights = weights_file(cfg.name, cfg.weights)
    key = {"model": cfg.name, "weights": file_sha256(weights) if weights else "random", "top_n": cfg.top_n,
           "min_size": cfg.min_size, "max_size": cfg.max_size, "backend": cfg.backend, "threads": cfg.threads,
           "workers": cfg.workers, "precisions": precisions, "cpu": cpu_identity(), "version": TIMING_VERSION,
           "exporter": EXPORTER_VERSION, "fp32_nodes": list(fp32_nodes(cfg.name))}  # what the graphs timed were
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def time_backends(backends: dict[str, Callable[[np.ndarray], object]],
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median ms a frame of each backend, run in turns on the same frames so drifting load hits all alike."""
    frames = timing_frames()
    for run in backends.values():
        for frame in frames[:WARMUP]:
            run(frame)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(ROUNDS):
        for name, run in backends.items():
            for frame in frames:
                started = clock()
                run(frame)
                times[name].append((clock() - started) * 1000)
    return {name: round(statistics.median(values), 2) for name, values in times.items()}


def with_measured_speeds(cfg: ModelConfig, machine: Machine,
                         load: Callable[[ModelConfig], Callable[[np.ndarray], object]],
                         clock: Callable[[], float] = time.perf_counter) -> Machine:
    """``machine`` with ``speeds`` for ``precision=auto``'s candidates, from the cache or measured now (each
    candidate loaded by ``load`` on one worker thread, as the pipeline's workers run it). Unchanged when there is
    nothing to choose between: an explicit precision, a given graph file, or a single candidate."""
    if cfg.precision != "auto" or cfg.onnx_path:
        return machine
    device = device_kind(cfg, machine.cuda)
    backend = pick_backend(cfg, machine, device)[0]
    candidates = auto_candidates(machine, backend, device)
    if len(candidates) < 2 or device != "cpu":
        return machine
    from detector.export_cache import cache_folder
    from detector.runtime import pick_workers

    workers, threads = pick_workers(cfg, device, machine.cores)
    timed = dataclasses.replace(cfg, backend=backend, device=device, workers=1, threads=threads or 1)
    path = cache_folder(cfg) / "precision-speeds.json"
    key = timing_key(dataclasses.replace(timed, workers=workers), candidates)
    saved = read_json(path)
    if key in saved:
        return dataclasses.replace(machine, speeds=saved[key]["ms"])
    log.info("precision=auto: timing %s on this CPU (once; cached in %s)", " and ".join(candidates), path)
    speeds = time_backends({p: load(dataclasses.replace(timed, precision=p)) for p in candidates}, clock)
    saved[key] = {"ms": speeds, "frame": f"{TIMING_SIZE[1]}x{TIMING_SIZE[0]}", "backend": backend,
                  "threads": timed.threads, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(path, saved)
    return dataclasses.replace(machine, speeds=speeds)


def read_json(path: Path) -> dict:
    """The cache file's entries; an unreadable file counts as empty (it is rewritten whole)."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: dict) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)
