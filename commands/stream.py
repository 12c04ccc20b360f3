"""``driving-detect stream`` (also ``python run_stream.py``): the pipeline on a file, camera, URL or image folder.

    driving-detect stream [--source SRC] [--config FILE] [--output VIDEO] [--detections JSONL]
                          [--benchmark-log FILE] [--max-frames N] [--device auto|cpu|cuda] [--display] [key=value ...]
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from commands.common import SUBCOMMANDS, CommandParser, bad_input
from core.config import ConfigError
from core.log import mask_url, setup_logging
from detector.backend import build_backend, check_class_filter
from detector.datasets import DatasetError
from detector.weights import WeightsError
from stream.config import load_pipeline_config
from stream.pipeline import Outputs, Pipeline
from stream.record import BenchmarkRecord, write_record
from stream.sinks import SinkError, prepare_output
from stream.sources import SourceError, open_source, source_name
from stream.stages import StageFailed

SUMMARY = SUBCOMMANDS["stream"]
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "driving_sample.mp4"
BAD_INPUT = (ConfigError, SourceError, SinkError, WeightsError, DatasetError, ValueError, OSError)
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--source", default=str(SAMPLE),
                        help="video file, webcam index (0), rtsp/http(s) URL, or image folder/glob (default: sample)")
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--output", help="annotated video path (default: outputs/<source>/annotated.mp4)")
    parser.add_argument("--detections", help="detections JSONL path (default: outputs/<source>/detections.jsonl)")
    parser.add_argument("--benchmark-log", help="CSV log to append the benchmark record to (default: output.benchmark_csv)")
    parser.add_argument("--max-frames", type=int, help="stop after N frames")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (overrides model.device)")
    parser.add_argument("--display", action="store_true", help="show the annotated stream in a window")
    parser.add_argument("--no-video", action="store_true", help="write no annotated video")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.top_n=50")
    args = parser.parse_intermixed_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"model.device={args.device}"] if args.device else [])
    cfg = load_pipeline_config(args.config, overrides)
    out_dir = Path(cfg.output.dir) / source_name(args.source)
    outputs = Outputs(
        video=None if args.no_video or not cfg.output.video else Path(args.output or out_dir / "annotated.mp4"),
        detections=prepare_output(Path(args.detections or out_dir / "detections.jsonl")),
        record_json=prepare_output(out_dir / "benchmark.json"),
        record_csv=prepare_output(Path(args.benchmark_log or cfg.output.benchmark_csv)),
    )
    source = open_source(args.source, cfg.source)
    backend = build_backend(cfg.model)
    check_class_filter(backend.class_map, cfg.nms, cfg.model.name)
    pipeline = Pipeline(cfg, source, args.source, backend, outputs, args.max_frames, args.display, not args.quiet)

    def on_signal(signum: int, _frame) -> None:
        if pipeline.source_done.is_set():
            pipeline.abort()
        else:
            log.warning("%s: stopping; finishing the frames in flight", signal.Signals(signum).name)
            pipeline.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    failure = None
    try:
        record = pipeline.run()
    except StageFailed as exc:
        failure, record = exc, pipeline.record()  # what was written before the failure
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_record(record, outputs.record_json, outputs.record_csv)
    if failure is not None:
        print(f"error: {mask_url(str(failure))}", file=sys.stderr)
        return 1
    summary(record, outputs)
    return 0


def summary(record: BenchmarkRecord, outputs: Outputs) -> None:
    stages = ", ".join(f"{k} {v['mean']:.1f}" for k, v in record.stages.items())
    print(f"{record.frames} frames in {record.seconds:.1f} s: {record.fps:.2f} fps "
          f"({record.model}, top-N {record.top_n}, {record.backend} on {record.device})")
    print(f"stage mean ms: {stages}; end-to-end p50 {record.latency['p50']:.0f} ms, p95 {record.latency['p95']:.0f} ms; "
          f"dropped {record.dropped}, skipped {record.skipped}")
    if outputs.video is not None:
        print(f"video:      {outputs.video}")
    print(f"detections: {outputs.detections}")
    print(f"benchmark:  {outputs.record_json} (+ row in {outputs.record_csv})")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    setup_logging(args.quiet)
    try:
        return run(args)
    except BAD_INPUT as exc:
        return bad_input(exc)


if __name__ == "__main__":
    sys.exit(main())
