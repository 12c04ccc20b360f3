"""Several sources in one run: one backend and one `InferencePool` shared by one `Pipeline` per source.

Each source keeps everything of its own (policy, reconnects, tracker, interval, overlay, outputs in
``<out>/<NAME>/``, its benchmark record); only inference is shared. A source that fails while running ends
alone (a live one reconnects first, as in a single run); the others go on. The run writes one more record,
``<out>/run.json``: frames of every source, summed, over the run's wall time.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError, to_dict
from core.log import mask_url
from detector.backend import Backend, build_backend, check_class_filter
from stream.config import PipelineConfig
from stream.pipeline import Outputs, Pipeline, resolved_model
from stream.pool import InferencePool
from stream.record import BenchmarkRecord, write_record
from stream.run import default_outputs, protect_source, run_pipeline
from stream.sinks import check_writable
from stream.sources import SourceError, is_live, open_source, source_name
from stream.stages import StageFailed

log = logging.getLogger(__name__)
NAMED = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)=(.+)$")  # NAME=SPEC; a URL's scheme has a ':' before any '='
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class SourceEntry:
    """One ``--source [NAME=]SPEC``: ``name`` names its outputs folder, log lines, web page and metrics label."""

    name: str
    spec: str


def parse_sources(texts: list[str]) -> list[SourceEntry]:
    """``[NAME=]SPEC`` each; NAME defaults to `source_name` (file stem, ``camN``, URL host and path), made
    unique with ``-2``, ``-3``, ... A NAME given twice is a `ConfigError` (its outputs would collide)."""
    named: list[tuple[str | None, str]] = []
    for text in texts:
        match = NAMED.match(text)
        named.append(match.groups() if match and not Path(text).exists() else (None, text))
    explicit = [name for name, _ in named if name is not None]
    duplicates = sorted({name for name in explicit if explicit.count(name) > 1})
    if duplicates:
        raise ConfigError(f"--source: the name {', '.join(repr(d) for d in duplicates)} is given to more than one "
                          "source; their outputs would collide")
    taken = set(explicit)
    entries = []
    for name, spec in named:
        if name is None:
            base = name = source_name(spec)
            count = 1
            while name in taken:
                count += 1
                name = f"{base}-{count}"
            taken.add(name)
        entries.append(SourceEntry(name, spec))
    return entries


def plan_outputs(cfg: PipelineConfig, entries: list[SourceEntry], out_dir: str | Path | None, no_video: bool,
                 benchmark_log: str | Path | None) -> tuple[dict[str, Outputs], Path]:
    """Each source's outputs in ``<out_dir>/<NAME>/`` (``out_dir`` defaults to ``output.dir``) and the run's
    record path, checked now without creating anything: no output may be any source, lie inside an image-folder
    source, or be another output (`ConfigError`, `SinkError`)."""
    base = Path(out_dir) if out_dir is not None else Path(cfg.output.dir)
    outputs = {e.name: default_outputs(cfg, e.spec, no_video=no_video, out_dir=base / e.name,
                                       benchmark_log=benchmark_log) for e in entries}
    run_record = check_writable(base / RUN_RECORD)
    paths = [run_record] + [p for o in outputs.values() for p in (o.video, o.detections, o.record_json) if p]
    for entry in entries:
        protect_source(entry.spec, paths)
    resolved = [p.resolve() for p in paths]
    clashes = sorted({str(p) for p in paths if resolved.count(p.resolve()) > 1})
    if clashes:
        raise ConfigError(f"two outputs of this run would be the same file: {', '.join(clashes)}")
    return outputs, run_record


@dataclass
class SourceFailure:
    """A source that did not open (or ended in a failure), with the one-line reason."""

    name: str
    spec: str
    error: str

    def line(self) -> str:
        return mask_url(f"source '{self.name}' ({self.spec}): {self.error}")


class MultiRun:
    """The pipelines of several sources, run together: each on threads of its own, inference on the pool."""

    def __init__(self, pipelines: list[Pipeline], pool: InferencePool, run_record: Path,
                 record_csv: Path | None, failed: list[SourceFailure]):
        self.pipelines, self.pool, self.run_record, self.record_csv = pipelines, pool, run_record, record_csv
        self.failed = failed  # sources that did not open (--keep-going)
        self.results: dict[str, tuple[BenchmarkRecord, StageFailed | None]] = {}
        self.seconds = 0.0

    @property
    def stopping(self) -> bool:
        return all(p.stopping for p in self.pipelines)

    def request_stop(self) -> None:
        for pipeline in self.pipelines:
            pipeline.request_stop()

    def abort(self) -> None:
        for pipeline in self.pipelines:
            pipeline.abort()

    def run(self) -> BenchmarkRecord:
        """Run every source to its end (or a stop) and write every record; returns the run's record. A source's
        failure is in ``results`` and ends that source alone."""
        started = time.perf_counter()
        threads = [threading.Thread(target=self._run_one, args=(p,), name=f"source-{p.source_id}", daemon=True)
                   for p in self.pipelines]
        for thread in threads:
            thread.start()
        closer = threading.Thread(target=self._close_when_done, args=(threads,), name="pool-closer", daemon=True)
        closer.start()
        self.pool.serve()
        closer.join()
        self.seconds = time.perf_counter() - started
        record = self.record()
        try:
            write_record(record, self.run_record, self.record_csv)
        except OSError as exc:
            log.error("cannot write the run's record: %s", exc)
        return record

    def _run_one(self, pipeline: Pipeline) -> None:
        try:
            self.results[pipeline.source_id] = run_pipeline(pipeline)
        except BaseException as exc:  # noqa: BLE001 - ends this source alone; reported with the others
            self.results[pipeline.source_id] = (pipeline.record(), StageFailed("run", exc))
        failure = self.results[pipeline.source_id][1]
        if failure is not None:
            log.error("%s", mask_url(f"source '{pipeline.source_id}' ended: {failure}"))

    def _close_when_done(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            thread.join()
        self.pool.close()

    def record(self) -> BenchmarkRecord:
        """The run's record: frames, drops, skips and reconnects of every source summed, FPS over the wall time."""
        records = [self.results[p.source_id][0] for p in self.pipelines if p.source_id in self.results]
        first = self.pipelines[0]
        m = first.cfg.model
        frames = sum(r.frames for r in records)
        ended = {r.ended for r in records}
        return BenchmarkRecord(
            kind="stream", source=", ".join(f"{p.source_id}={mask_url(p.source_spec)}" for p in self.pipelines),
            model=m.name, weights=m.weights, backend=first.backend.name, device=str(first.backend.device),
            top_n=m.top_n, frames=frames, seconds=round(self.seconds, 3),
            fps=round(frames / self.seconds, 2) if self.seconds > 0 else 0.0, precision=m.precision,
            workers=m.workers, threads=m.threads, dropped=sum(r.dropped for r in records),
            skipped=sum(r.skipped for r in records), reconnects=sum(r.reconnects for r in records),
            detector_frames=sum(r.detector_frames for r in records), tracks=sum(r.tracks for r in records),
            variant=f"sources={len(self.pipelines)}",
            ended="failed" if "failed" in ended or self.failed else ended.pop() if len(ended) == 1 else "mixed",
            config=to_dict(first.cfg),
        )


def build_multi_run(cfg: PipelineConfig, entries: list[SourceEntry], outputs: dict[str, Outputs], run_record: Path,
                    max_frames: int | None = None, keep_going: bool = False,
                    backend: Backend | None = None) -> MultiRun:
    """Open every source (files first, then the backend, then live sources, as `stream.run.build_pipeline`
    does) and build their pipelines on one pool. Sources that do not open raise one `MultiSourceError` listing
    them all, unless ``keep_going``, where they are left out (and reported) and the others run."""
    sources, failed = {}, []
    for entry in sorted(entries, key=lambda e: is_live(e.spec)):
        if is_live(entry.spec) and backend is None:
            backend = build_backend(cfg.model)
        try:
            sources[entry.name] = open_source(entry.spec, cfg.source)
        except SourceError as exc:
            failed.append(SourceFailure(entry.name, entry.spec, str(exc)))
    if failed and (not keep_going or not sources):
        raise MultiSourceError(failed)
    if backend is None:
        backend = build_backend(cfg.model)
    check_class_filter(backend.class_map, cfg.nms, cfg.model.name)
    workers = resolved_model(cfg.model, backend).workers
    pool = InferencePool(backend, workers)
    pipelines = []
    for entry in entries:
        if entry.name in sources:
            pipeline = Pipeline(cfg, sources[entry.name], entry.spec, backend, outputs[entry.name], max_frames,
                                progress=False, source_id=entry.name, pool=pool)
            pipelines.append(pipeline)
    record_csv = next(iter(outputs.values())).record_csv
    return MultiRun(pipelines, pool, run_record, record_csv, failed)


class MultiSourceError(SourceError):
    """Sources of a run that did not open; one line each."""

    def __init__(self, failures: list[SourceFailure]):
        self.failures = failures
        super().__init__("; ".join(f.line() for f in failures))

