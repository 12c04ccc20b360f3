"""The batch config: every pipeline section (the same file and overrides as ``driving-detect stream``) plus a
``batch:`` section for the fleet."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.config import load_config, to_dict, validate
from stream.config import DEFAULT_CONFIG, PipelineConfig


class BatchError(RuntimeError):
    """Bad input for the whole batch (no sources, Ray missing or unreachable): one line, exit 2."""


@dataclass
class BatchConfig:
    """The fleet: ``workers`` actors, each loading the model once and running one file at a time.

    ``workers`` 0: as many as the cluster's CPUs hold at ``threads`` each (at least one).
    ``threads``: CPU cores per worker, reserved in Ray and split over the worker's pipeline (``model.workers``
    inference workers of ``model.threads`` each); 0: what the pipeline config already uses
    (``model.workers`` x ``model.threads``, a thread counting 1 when ``model.threads`` is 0), or with auto
    ``model.workers`` `AUTO_WORKER_THREADS`.
    ``max_retries``: how often a file is retried after its worker died (killed process, lost node).
    ``connect_timeout``: seconds to reach a ``--ray-address`` before giving up.
    ``object_store_mb``: the embedded Ray's object store (only per-file results pass through it).
    """

    workers: int = 0
    threads: int = 0
    max_retries: int = 2
    connect_timeout: float = 15.0
    object_store_mb: int = 100

    def __post_init__(self) -> None:
        validate(
            *((getattr(self, key) >= 0, f"'batch.{key}' must be >= 0, got {getattr(self, key)}")
              for key in ("workers", "threads", "max_retries")),
            (self.connect_timeout > 0, f"'batch.connect_timeout' must be > 0, got {self.connect_timeout}"),
            (self.object_store_mb >= 80,
             f"'batch.object_store_mb' must be >= 80 (Ray's minimum), got {self.object_store_mb}"),
        )


@dataclass
class FleetConfig(PipelineConfig):
    batch: BatchConfig = field(default_factory=BatchConfig)


def load_fleet_config(path: str | Path | None = None, overrides: list[str] | None = None) -> FleetConfig:
    """``configs/default.yaml`` unless another file is given, with ``key=value`` overrides (``batch.*`` too)."""
    return load_config(FleetConfig, path or DEFAULT_CONFIG, overrides)


# Cores a fleet worker takes when neither batch.threads nor model.workers says: one worker of 2 x 1 threads beat two
# of 1 x 1 on 2 cores (docs/benchmarks.md, "Fleet throughput"); auto workers would otherwise give every worker the
# whole machine
AUTO_WORKER_THREADS = 2


def worker_threads(cfg: FleetConfig) -> int:
    """CPU cores one fleet worker uses (``batch.threads``, else what its pipeline config uses)."""
    if cfg.batch.threads:
        return cfg.batch.threads
    return cfg.model.workers * max(cfg.model.threads, 1) if cfg.model.workers else AUTO_WORKER_THREADS


def pipeline_config(cfg: FleetConfig) -> PipelineConfig:
    """The pipeline config a worker runs: ``cfg`` without ``batch``, its `worker_threads` split over its inference
    workers when ``batch.threads`` or auto ``model.workers`` leave the split open (at most one inference worker
    per thread). Frame order and per-frame results do not depend on the split, so outputs stay identical to a
    ``driving-detect stream`` run of the same config."""
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(PipelineConfig)}
    if cfg.batch.threads or not cfg.model.workers:
        threads = worker_threads(cfg)
        workers = min(cfg.model.workers or threads, threads)
        sections["model"] = dataclasses.replace(cfg.model, workers=workers, threads=threads // workers)
    return PipelineConfig(**sections)


def fingerprint(cfg: PipelineConfig, no_video: bool, max_frames: int | None) -> str:
    """What makes a finished file's outputs valid for a rerun: the pipeline config, video on/off, frame limit."""
    data = {"config": to_dict(cfg), "video": not no_video and cfg.output.video, "max_frames": max_frames}
    data["config"]["model"].pop("threads")  # how the cores are split does not change the outputs
    data["config"]["model"].pop("workers")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
