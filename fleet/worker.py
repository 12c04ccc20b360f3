"""The fleet worker: one per Ray actor, the model loaded once and reused for every file it is given.

Plain Python (`fleet.batch` wraps it with ``ray.remote``): each file runs through `stream.run` exactly as
``driving-detect stream`` runs it, into a ``.partial-<host>-<pid>`` folder beside its final place; the files are
moved into ``DIR/<rel>/`` only when the run is complete, so a worker that dies mid-file leaves no output that
looks finished. A retry finds the dead attempt's partial folder, removes it and counts it in ``retries``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from core.log import mask_url, setup_logging
from detector.backend import build_backend
from stream.config import PipelineConfig
from stream.run import RUN_INPUT_ERRORS, build_pipeline, default_outputs, run_pipeline

log = logging.getLogger(__name__)
PARTIAL_PREFIX = ".partial-"


def output_files(folder: Path, video: bool) -> list[Path]:
    """What a finished file leaves in its folder (`stream.run.default_outputs` names them)."""
    return [folder / "detections.jsonl", folder / "benchmark.json", *([folder / "annotated.mp4"] if video else [])]


def class_counts(detections: Path) -> dict[str, int]:
    """Detections per class over the whole file, from its JSONL."""
    counts: Counter[str] = Counter()
    with detections.open() as f:
        for line in f:
            counts.update(json.loads(line)["labels"])
    return dict(sorted(counts.items()))


class FileWorker:
    """Builds the backend once (`detector.backend.build_backend`), then runs files one at a time."""

    def __init__(self, cfg: PipelineConfig):
        setup_logging(quiet=True)  # warnings only: Ray forwards every worker line to the driver's terminal
        self.cfg, self.backend, self.error = cfg, None, ""
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        try:
            self.backend = build_backend(cfg.model)
        except RUN_INPUT_ERRORS as exc:  # kept for `ready`: raised here, Ray would print the traceback and restart us
            self.error = mask_url(str(exc).strip().splitlines()[0])

    def ready(self) -> dict[str, str]:
        """Who this worker is and what it runs, or why its model did not load (the driver asks once, first)."""
        if self.backend is None:
            return {"worker": self.name, "error": self.error}
        return {"worker": self.name, "backend": self.backend.name, "device": str(self.backend.device)}

    def process(self, source: str, folder: str, no_video: bool = False, max_frames: int | None = None) -> dict:
        """Run ``source`` into ``folder``; the per-file result (state, frames, seconds, fps, detections per class,
        retries, error, the benchmark record) for the driver's manifest and summary."""
        final = Path(folder)
        final.mkdir(parents=True, exist_ok=True)
        stale = sorted(final.glob(f"{PARTIAL_PREFIX}*"))
        for old in stale:
            log.warning("%s: removing %s, left by an attempt that did not finish", source, old.name)
            shutil.rmtree(old, ignore_errors=True)
        partial = final / f"{PARTIAL_PREFIX}{self.name}"
        result: dict = {"worker": self.name, "retries": len(stale)}
        try:
            outputs = default_outputs(self.cfg, source, no_video=no_video, out_dir=partial, log_row=False)
            pipeline = build_pipeline(self.cfg, source, outputs, backend=self.backend, max_frames=max_frames,
                                      progress=False)
            record, failure = run_pipeline(pipeline)
        except RUN_INPUT_ERRORS as exc:  # reported as failed, not retried: it would fail the same way again
            shutil.rmtree(partial, ignore_errors=True)
            return {**result, "state": "failed", "error": mask_url(str(exc).strip().splitlines()[0])}
        if failure is not None:
            shutil.rmtree(partial, ignore_errors=True)
            return {**result, "state": "failed", "error": mask_url(str(failure)), "frames": record.frames}
        written = output_files(partial, outputs.video is not None)
        counts = class_counts(outputs.detections)
        for path in written:
            os.replace(path, final / path.name)
        shutil.rmtree(partial, ignore_errors=True)
        return {**result, "state": "done", "frames": record.frames, "seconds": record.seconds, "fps": record.fps,
                "skipped": record.skipped, "detections": counts, "record": asdict(record)}
