"""``driving-detect stream`` (also ``python run_stream.py``): the pipeline on a file, camera, URL or image folder.

    driving-detect stream [--source SRC] [--config FILE] [--out DIR] [--output VIDEO] [--detections JSONL]
                          [--record JSON] [--benchmark-log FILE] [--max-frames N] [--device auto|cpu|cuda]
                          [--display] [--serve [HOST:]PORT [--serve-token TOKEN|auto]] [key=value ...]
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from commands.common import SUBCOMMANDS, CommandParser, add_max_frames, add_model_options, bad_input, run_with_config
from core.log import mask_url
from stream.config import PipelineConfig

if TYPE_CHECKING:
    from stream.pipeline import Outputs, Pipeline
    from stream.record import BenchmarkRecord

SUMMARY = SUBCOMMANDS["stream"]
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "driving_sample.mp4"
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--source", default=str(SAMPLE),
                        help="video file, webcam index (0), rtsp/http(s) URL, or image folder/glob (default: sample)")
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--out", metavar="DIR", help="output folder for annotated.mp4, detections.jsonl and "
                                                     "benchmark.json (default: <output.dir>/<source name>)")
    parser.add_argument("--output", metavar="VIDEO", help="annotated video path (default: <out>/annotated.mp4)")
    parser.add_argument("--detections", help="detections JSONL path (default: <out>/detections.jsonl)")
    parser.add_argument("--record", help="benchmark record JSON path (default: benchmark.json next to the detections)")
    parser.add_argument("--benchmark-log", help="CSV log to append the benchmark record to (default: output.benchmark_csv)")
    add_max_frames(parser, "stop after N frames")
    parser.add_argument("--display", action="store_true", help="show the annotated stream in a window")
    parser.add_argument("--no-video", action="store_true", help="write no annotated video")
    parser.add_argument("--serve", metavar="[HOST:]PORT",
                        help="live web view while it runs: dashboard, /stream.mjpg, /api/status, /metrics "
                             "(host default 127.0.0.1; port 0 picks a free one)")
    parser.add_argument("--serve-token", metavar="TOKEN",
                        help="token every web request must carry; needed for a non-loopback --serve "
                             "('auto' generates one; default: serve.token)")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    add_model_options(parser)
    return parser.parse_intermixed_args(argv)


def run(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    """The run, its modules (and torch) imported only now that the config is known to be good."""
    from stream.run import RUN_INPUT_ERRORS

    try:
        return run_stream(args, cfg)
    except RUN_INPUT_ERRORS as exc:
        return bad_input(exc)


def run_stream(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    from serve.server import WebView, plan_serving
    from stream.run import build_pipeline, default_outputs, run_pipeline

    plan = plan_serving(args.serve, args.serve_token or cfg.serve.token) if args.serve else None
    outputs = default_outputs(cfg, args.source, args.output, args.detections, args.benchmark_log, args.no_video,
                              out_dir=args.out, record=args.record)
    pipeline = build_pipeline(cfg, args.source, outputs, max_frames=args.max_frames, display=args.display,
                              progress=not args.quiet)
    with stop_on_signals(pipeline), WebView(pipeline, plan) if plan else contextlib.nullcontext():
        record, failure = run_pipeline(pipeline)
    if failure is not None:
        print(f"error: {mask_url(str(failure))}", file=sys.stderr)
        return 1
    summary(record, outputs)
    return 0


@contextlib.contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """SIGINT/SIGTERM: the first stops at the source and lets frames in flight drain, a second stops now."""

    def on_signal(signum: int, _frame) -> None:
        if pipeline.source_done.is_set():
            pipeline.abort()
        else:
            log.warning("%s: stopping; finishing the frames in flight", signal.Signals(signum).name)
            pipeline.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def summary(record: BenchmarkRecord, outputs: Outputs) -> None:
    stages = ", ".join(f"{k} {v['mean']:.1f}" for k, v in record.stages.items())
    if record.ended != "complete":
        of = f" of {record.source_frames}" if record.source_frames else ""
        why = "--max-frames" if record.ended == "max_frames" else record.ended
        print(f"stopped after {record.frames}{of} frames ({why})")
    # backend names carry any precision but fp32 ('openvino-int8'): say it once
    runtime = record.backend if record.backend.endswith(record.precision) else f"{record.backend} {record.precision}"
    print(f"{record.frames} frames in {record.seconds:.1f} s: {record.fps:.2f} fps "
          f"({record.model}, top-N {record.top_n}, {runtime} on {record.device}, "
          f"{record.workers} x {record.threads} inference workers x threads, input {record.input_size})")
    print(f"stage mean ms: {stages}; end-to-end p50 {record.latency['p50']:.0f} ms, p95 {record.latency['p95']:.0f} ms; "
          f"dropped {record.dropped}, skipped {record.skipped}")
    if outputs.video is not None:
        print(f"video:      {outputs.video}")
    print(f"detections: {outputs.detections}")
    print(f"benchmark:  {outputs.record_json} (+ row in {outputs.record_csv})")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_with_config(parse_args(argv, prog), run)


if __name__ == "__main__":
    sys.exit(main())
