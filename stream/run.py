"""One run of the pipeline on one source, to its outputs: the library code behind ``driving-detect stream``.

Commands parse arguments and call these; anything else that processes a source (a web view, a fleet worker)
calls the same three functions, so its results are identical to a ``driving-detect stream`` run.
"""
from __future__ import annotations

from pathlib import Path

from core.config import ConfigError
from detector.backend import Backend, build_backend, check_class_filter
from detector.datasets import DatasetError
from detector.weights import WeightsError
from stream.config import PipelineConfig
from stream.pipeline import Outputs, Pipeline
from stream.record import BenchmarkRecord, write_record
from stream.sinks import SinkError, prepare_output
from stream.sources import SourceError, is_live, open_source, source_name
from stream.stages import StageFailed

# What `build_pipeline` and `default_outputs` raise for input that cannot run as given (a config, source, output,
# weights or data problem): the stream command's one-line bad input, a fleet worker's failed file.
RUN_INPUT_ERRORS = (ConfigError, SourceError, SinkError, WeightsError, DatasetError, ValueError, OSError)


def default_outputs(cfg: PipelineConfig, source_spec: str, video: str | Path | None = None,
                    detections: str | Path | None = None, benchmark_log: str | Path | None = None,
                    no_video: bool = False, out_dir: str | Path | None = None, log_row: bool = True) -> Outputs:
    """Output paths, each checked writable now: ``<out_dir>/annotated.mp4``, ``detections.jsonl`` and
    ``benchmark.json`` (``out_dir`` defaults to ``output.dir/<source name>``), the record row in
    ``output.benchmark_csv`` unless ``log_row`` is False (a fleet worker: its driver keeps the log); explicit
    paths win."""
    folder = Path(out_dir) if out_dir is not None else Path(cfg.output.dir) / source_name(source_spec)
    return Outputs(
        video=None if no_video or not cfg.output.video else Path(video or folder / "annotated.mp4"),
        detections=prepare_output(Path(detections or folder / "detections.jsonl")),
        record_json=prepare_output(folder / "benchmark.json"),
        record_csv=prepare_output(Path(benchmark_log or cfg.output.benchmark_csv)) if log_row else None,
    )


def build_pipeline(cfg: PipelineConfig, source_spec: str, outputs: Outputs, backend: Backend | None = None,
                   max_frames: int | None = None, display: bool = False, progress: bool = True) -> Pipeline:
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
    return Pipeline(cfg, source, source_spec, backend, outputs, max_frames, display, progress)


def run_pipeline(pipeline: Pipeline) -> tuple[BenchmarkRecord, StageFailed | None]:
    """Run to the end and write the benchmark record (also after a stage failure: what was written counts)."""
    failure = None
    try:
        record = pipeline.run()
    except StageFailed as exc:
        failure, record = exc, pipeline.record()
    write_record(record, pipeline.outputs.record_json, pipeline.outputs.record_csv)
    return record, failure
