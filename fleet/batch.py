"""The batch driver: expand the sources, skip what the manifest says is finished, run the rest on Ray workers
(embedded ``ray.init()`` or an existing cluster), then write the fleet summary and the fleet's benchmark record.

Outputs in ``DIR``: ``<rel>/`` per file (`fleet.worker`), ``manifest.jsonl`` (`fleet.manifest`),
``summary.csv`` and ``summary.json`` (one row per file: state, frames, seconds, FPS, detections per class,
retries, error), ``benchmarks.csv`` (each file's record row as it finishes, then one ``kind=batch`` row for the
whole fleet, so ``driving-detect plot DIR/benchmarks.csv`` draws them) and ``fleet.json`` (that record).
"""
from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from core.config import to_dict
from core.log import mask_url
from fleet.config import BatchConfig, BatchError, FleetConfig, fingerprint, pipeline_config, worker_threads
from fleet.manifest import Manifest
from fleet.sources import Item, expand_sources
from fleet.worker import FileWorker, output_files
from stream.record import BenchmarkRecord, append_csv, write_record, write_table

log = logging.getLogger(__name__)
EXTRA = "pip install -e '.[fleet]'"


@dataclass
class BatchResult:
    """Per-file summary rows (every file of the batch, finished earlier or now) and the fleet record (None when
    this run processed nothing)."""

    rows: list[dict]
    record: BenchmarkRecord | None
    workers: int = 0
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["state"] == "failed"]


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise BatchError(f"driving-detect batch needs Ray, which is not installed: {EXTRA}") from None
    return ray


def check_reachable(address: str, timeout: float) -> None:
    """A TCP connect to ``host:port`` first: ``ray.init`` retries an unreachable address for a minute or more."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BatchError(f"cannot reach Ray at '{mask_url(address)}' within {timeout:g} s: "
                         f"{exc.strerror or exc}") from None


@contextlib.contextmanager
def ray_session(ray: ModuleType, address: str | None, cfg: BatchConfig) -> Iterator[None]:
    """The cluster at ``address`` (checked reachable first), else an embedded local Ray on this machine's cores; an
    already initialised Ray (a notebook, a test) is used as it is. What this opened, it shuts down."""
    if address:
        check_reachable(address, cfg.connect_timeout)
    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, object_store_memory=cfg.object_store_mb * 10**6,
                     logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BatchError(f"cannot start Ray{f' at {mask_url(address)!r}' if address else ''}: {error_line(exc)}") from None
    try:
        yield
    finally:
        ray.shutdown()


def error_line(exc: BaseException) -> str:
    """A Ray error as one line: the worker's own exception when Ray carries one, else Ray's first line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        return error_line(cause)
    text = str(exc).strip().splitlines()
    return mask_url(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))


def start_workers(ray: ModuleType, cfg: FleetConfig, files: int) -> tuple[list, int]:
    """``batch.workers`` actors (0: as many as the cluster's CPUs hold at `worker_threads` each), at most ``files``.

    Ray restarts a dead actor (``max_restarts``) and reruns the file it had (``max_task_retries``); a model that
    does not load is bad input for the whole batch."""
    threads = worker_threads(cfg)
    cpus = ray.cluster_resources().get("CPU", 1.0)
    count = min(cfg.batch.workers or max(1, int(cpus // threads)), files)
    per_worker = float(threads)
    if count * threads > cpus:
        per_worker = cpus / count
        log.warning("%d workers x %d threads exceed the cluster's %g CPUs: the workers share them", count, threads,
                    cpus)
    actor = ray.remote(FileWorker).options(num_cpus=per_worker, max_restarts=-1,
                                           max_task_retries=cfg.batch.max_retries)
    workers = [actor.remote(pipeline_config(cfg)) for _ in range(count)]
    try:
        info = ray.get([w.ready.remote() for w in workers])
    except ray.exceptions.RayError as exc:
        raise BatchError(f"the workers could not start: {error_line(exc)}") from None
    if errors := [i["error"] for i in info if "error" in i]:
        raise BatchError(f"the workers could not load the model: {errors[0]}")
    log.info("%d workers x %d threads: %s", count, threads, ", ".join(i["worker"] for i in info))
    return workers, threads


def run_files(ray: ModuleType, workers: list, todo: list[Item], out_dir: Path, manifest: Manifest, fp: str,
              no_video: bool, max_frames: int | None, progress: bool) -> dict[str, dict]:
    """One file per task, each worker given its next file when it returns one (hand-written rather than Ray's
    ActorPool, whose errors do not say which file they belong to); results by ``rel``."""
    queue, pending, results = deque(todo), {}, {}
    frames, started = 0, time.perf_counter()

    def submit(worker) -> None:
        item = queue.popleft()
        manifest.append(item.rel, "running", source=item.source, fingerprint=fp)
        pending[worker.process.remote(item.source, str(out_dir / item.rel), no_video, max_frames)] = (worker, item)

    for worker in workers[:len(queue)]:
        submit(worker)
    with tqdm(total=len(todo), unit="file", desc="batch", file=sys.stderr, disable=not progress) as bar:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            worker, item = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died on every attempt, or an unexpected error
                result = {"state": "failed", "error": error_line(exc)}
            if result["state"] == "done":
                append_csv(out_dir / "benchmarks.csv", BenchmarkRecord(**result["record"]).csv_row())
                frames += result["frames"]
            else:
                log.warning("%s failed: %s", item.source, result["error"])
            entry = manifest.append(item.rel, result["state"], source=item.source, fingerprint=fp,
                                    **{k: v for k, v in result.items() if k not in ("state", "record")})
            results[item.rel] = {**entry, "record": result.get("record")}
            elapsed = time.perf_counter() - started
            bar.set_postfix(fps=f"{frames / elapsed:.1f}", failed=sum(r["state"] == "failed" for r in results.values()))
            bar.update(1)
            if queue:
                submit(worker)
    return results


SUMMARY_KEYS = ("file", "source", "state", "frames", "seconds", "fps", "skipped", "retries", "worker", "error")


def summary_row(entry: dict, earlier: bool) -> dict:
    row = {key: entry.get(key, "") for key in SUMMARY_KEYS}
    row["state"] = "done earlier" if earlier else entry["state"]
    row["detections"] = entry.get("detections", {})
    return row


def fleet_record(results: dict[str, dict], seconds: float, cfg: FleetConfig, workers: int, threads: int,
                 files: int) -> BenchmarkRecord | None:
    """The whole batch as one benchmark record: frames of every file finished in this run over the wall time."""
    records = [r["record"] for r in results.values() if r.get("record")]
    if not records:
        return None
    first, frames = records[0], sum(r["frames"] for r in records)
    return BenchmarkRecord(
        kind="batch", source=f"{files} files", model=first["model"], weights=first["weights"],
        backend=first["backend"], device=first["device"], top_n=first["top_n"], frames=frames,
        seconds=round(seconds, 3), fps=round(frames / seconds, 2) if seconds > 0 else 0.0,
        skipped=sum(r["skipped"] for r in records), tracks=sum(r["tracks"] for r in records),
        detector_frames=sum(r["detector_frames"] for r in records),
        variant=f"workers={workers} threads={threads}", config=to_dict(cfg),
    )


def write_summary(out_dir: Path, rows: list[dict], record: BenchmarkRecord | None) -> dict[str, Path]:
    """``summary.csv`` (detections as ``det_<class>`` columns), ``summary.json`` (with the fleet record)."""
    classes = sorted({name for row in rows for name in row["detections"]})
    flat = [{**{k: v for k, v in row.items() if k != "detections"},
             **{f"det_{name}": row["detections"].get(name, 0) for name in classes}} for row in rows]
    paths = {"summary_csv": out_dir / "summary.csv", "summary_json": out_dir / "summary.json"}
    write_table(paths["summary_csv"], flat)
    fleet = None if record is None else {k: v for k, v in asdict(record).items() if k != "config"}
    paths["summary_json"].write_text(json.dumps({"files": rows, "fleet": fleet}, indent=2))
    if record is not None:
        paths["record"], paths["log"] = out_dir / "fleet.json", out_dir / "benchmarks.csv"
        write_record(record, paths["record"], paths["log"])
    return paths


def run_batch(cfg: FleetConfig, specs: list[str], out_dir: str | Path, address: str | None = None,
              no_video: bool = False, max_frames: int | None = None, progress: bool = True) -> BatchResult:
    """Every file of ``specs`` through the stream pipeline into ``out_dir/<rel>/``; files the manifest says are
    finished (same config) are skipped. Bad input for the whole batch raises `BatchError` or `SinkError`."""
    out_dir = Path(out_dir)
    items = expand_sources(specs, out_dir)
    manifest = Manifest(out_dir)
    pcfg = pipeline_config(cfg)
    fp = fingerprint(pcfg, no_video, max_frames)
    video = not no_video and pcfg.output.video
    earlier = {item.rel: entry for item in items
               if (entry := manifest.finished(item.rel, fp, output_files(out_dir / item.rel, video)))}
    todo = [item for item in items if item.rel not in earlier]
    log.info("%d files: %d to run, %d finished earlier", len(items), len(todo), len(earlier))
    results: dict[str, dict] = {}
    record, workers, seconds = None, 0, 0.0
    if todo:
        ray = import_ray()
        with ray_session(ray, address, cfg.batch):
            actors, threads = start_workers(ray, cfg, len(todo))
            workers, started = len(actors), time.perf_counter()
            results = run_files(ray, actors, todo, out_dir, manifest, fp, no_video, max_frames, progress)
            seconds = time.perf_counter() - started
        record = fleet_record(results, seconds, cfg, workers, threads, len(todo))
    rows = [summary_row(earlier[i.rel], True) if i.rel in earlier else summary_row(results[i.rel], False)
            for i in items]
    return BatchResult(rows, record, workers, write_summary(out_dir, rows, record))
