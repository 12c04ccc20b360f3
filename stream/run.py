"""One run of the pipeline on one source, to its outputs: the library code behind ``driving-detect stream``.

Commands parse arguments and call these; anything else that processes a source (a web view, a fleet worker)
calls the same three functions, so its results are identical to a ``driving-detect stream`` run.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from core.config import ConfigError
from detector.backend import Backend, build_backend, check_class_filter
from detector.datasets import DatasetError
from detector.weights import WeightsError
from stream.config import PipelineConfig
from stream.pipeline import Outputs, Pipeline
from stream.record import BenchmarkRecord, write_record
from stream.sinks import SinkError, check_writable
from stream.sources import SourceError, glob_folder, is_glob, is_live, open_source, source_name
from stream.stages import StageFailed

log = logging.getLogger(__name__)
# What `build_pipeline` and `default_outputs` raise for input that cannot run as given (a config, source, output,
# weights or data problem): the stream command's one-line bad input, a fleet worker's failed file.
RUN_INPUT_ERRORS = (ConfigError, SourceError, SinkError, WeightsError, DatasetError, ValueError, OSError)


def default_outputs(cfg: PipelineConfig, source_spec: str, video: str | Path | None = None,
                    detections: str | Path | None = None, benchmark_log: str | Path | None = None,
                    no_video: bool = False, out_dir: str | Path | None = None, log_row: bool = True,
                    record: str | Path | None = None) -> Outputs:
    """Output paths, each checked now without creating anything: ``<out_dir>/annotated.mp4``,
    ``detections.jsonl`` and ``benchmark.json`` (``out_dir`` defaults to ``output.dir/<source name>``), the
    record row in ``output.benchmark_csv`` unless ``log_row`` is False (a fleet worker: its driver keeps the
    log). Explicit paths win; the record goes next to explicit detections unless ``record`` names it. None of
    them may be the source (`protect_source`). Without a video, an earlier run's ``annotated.mp4`` in the same
    folder is named for moving aside (`set_aside_stale`), so the folder never pairs old video with new detections.
    """
    folder = Path(out_dir) if out_dir is not None else Path(cfg.output.dir) / source_name(source_spec)
    writes_video = not no_video and cfg.output.video
    outputs = Outputs(
        video=Path(video or folder / "annotated.mp4") if writes_video else None,
        detections=Path(detections or folder / "detections.jsonl"),
        record_json=Path(record or (Path(detections).parent if detections else folder) / "benchmark.json"),
        record_csv=Path(benchmark_log or cfg.output.benchmark_csv) if log_row else None,
    )
    paths = [p for p in (outputs.video, outputs.detections, outputs.record_json, outputs.record_csv) if p]
    protect_source(source_spec, paths)
    for path in paths:
        check_writable(path)
    if not writes_video and (folder / "annotated.mp4").is_file():
        outputs.stale_video = folder / "annotated.mp4"
    return outputs


def protect_source(source_spec: str, outputs: list[Path]) -> None:
    """The input is never an output: an output that is the source file (also through a symlink or hard link) or
    lies inside an image-folder source (or the folder of an image glob) is a `SinkError`, before anything is
    opened for writing."""
    if is_live(source_spec):
        return
    source = Path(source_spec)
    folder = glob_folder(source_spec) if is_glob(source_spec) else source if source.is_dir() else None
    for path in outputs:
        if folder is not None and path.resolve().is_relative_to(folder.resolve()):
            raise SinkError(f"output '{path}' lies inside the source folder '{folder}'; write it elsewhere")
        if path.exists() and source.exists() and os.path.samefile(path, source):
            raise SinkError(f"output '{path}' is the source '{source_spec}' itself; write it elsewhere")


def set_aside_stale(outputs: Outputs) -> None:
    """Rename an earlier run's annotated video that this run (writing none) would leave beside its new detections:
    ``annotated.mp4`` becomes ``annotated.previous.mp4``, kept rather than deleted, and the log says so."""
    stale = outputs.stale_video
    if stale is None or not stale.is_file():
        return
    kept = stale.with_name(f"{stale.stem}.previous{stale.suffix}")
    os.replace(stale, kept)
    log.warning("'%s' is from an earlier run and this one writes no video: renamed to '%s'", stale, kept.name)


def build_pipeline(cfg: PipelineConfig, source_spec: str, outputs: Outputs, backend: Backend | None = None,
                   max_frames: int | None = None, display: bool = False, progress: bool = True,
                   source_id: str | None = None) -> Pipeline:
    """Open the source and (unless one is given, e.g. reused across files) build the backend. Raises the
    bad-input errors (`SourceError`, `ConfigError`, ...) before any frame is processed.

    A file is opened first, so a wrong path fails before the model loads; a live source last, so its frames
    don't pile up in FFmpeg's buffers while the model loads (the run would start seconds behind the camera).
    """
    live = is_live(source_spec)
    source = None if live else open_source(source_spec, cfg.source)
    if backend is None:
        backend = build_backend(cfg.model)
    if live:
        source = open_source(source_spec, cfg.source)
    check_class_filter(backend.class_map, cfg.nms, cfg.model.name)
    return Pipeline(cfg, source, source_spec, backend, outputs, max_frames, display, progress, source_id)


def run_pipeline(pipeline: Pipeline) -> tuple[BenchmarkRecord, StageFailed | None]:
    """Run to the end and write the benchmark record (also after a stage failure: what was written counts)."""
    failure = None
    set_aside_stale(pipeline.outputs)
    try:
        record = pipeline.run()
    except StageFailed as exc:
        failure, record = exc, pipeline.record()
    try:
        write_record(record, pipeline.outputs.record_json, pipeline.outputs.record_csv)
    except OSError as exc:  # a full disk: the old record files are intact (atomic writes)
        error = StageFailed("record", OSError(f"cannot write the benchmark record: {exc}"))
        if failure is None:
            failure = error
        else:
            log.error("%s", error)
    return record, failure
