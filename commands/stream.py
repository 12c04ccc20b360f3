"""``driving-detect stream`` (also ``python run_stream.py``): the pipeline on files, cameras, URLs or image folders.

    driving-detect stream [--source [NAME=]SRC ...] [--keep-going] [--config FILE] [--out DIR] [--output VIDEO]
                          [--detections JSONL] [--record JSON] [--benchmark-log FILE] [--max-frames N]
                          [--device auto|cpu|cuda] [--display] [--serve [HOST:]PORT [--serve-token TOKEN|auto]]
                          [key=value ...]

With several ``--source`` options one process runs them all on one shared model (`stream.multi`), each writing
to ``<out>/<NAME>/``.
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

from commands.common import (BAD_INPUT_EXIT, SUBCOMMANDS, CommandParser, add_max_frames, add_model_options, bad_input,
                             run_with_config)
from core.log import mask_url
from stream.config import PipelineConfig

if TYPE_CHECKING:
    from serve.server import ServePlan
    from stream.multi import MultiRun, SourceEntry
    from stream.pipeline import Outputs, Pipeline
    from stream.record import BenchmarkRecord

SUMMARY = SUBCOMMANDS["stream"]
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "driving_sample.mp4"
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--source", action="append", metavar="[NAME=]SRC",
                        help="video file, webcam index (0), rtsp/http(s) URL, or image folder/glob (default: sample); "
                             "repeat it to run several sources on one shared model, each writing to <out>/<NAME>/ "
                             "(NAME defaults to the file stem or camN)")
    parser.add_argument("--keep-going", action="store_true",
                        help="with several sources, run the ones that open when some do not (default: stop, exit 2)")
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--out", metavar="DIR", help="output folder for annotated.mp4, detections.jsonl and "
                                                     "benchmark.json (default: <output.dir>/<source name>); with "
                                                     "several sources the folder of their <NAME>/ folders and run.json")
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
    from stream.multi import parse_sources
    from stream.run import build_pipeline, default_outputs, run_pipeline

    entries = parse_sources(args.source or [str(SAMPLE)])
    plan = plan_serving(args.serve, args.serve_token or cfg.serve.token) if args.serve else None
    if len(entries) > 1:
        return run_several(args, cfg, entries, plan)
    entry = entries[0]
    out_dir = args.out or Path(cfg.output.dir) / entry.name
    outputs = default_outputs(cfg, entry.spec, args.output, args.detections, args.benchmark_log, args.no_video,
                              out_dir=out_dir, record=args.record)
    pipeline = build_pipeline(cfg, entry.spec, outputs, max_frames=args.max_frames, display=args.display,
                              progress=not args.quiet, source_id=entry.name)
    with stop_on_signals(pipeline), WebView([pipeline], plan) if plan else contextlib.nullcontext():
        record, failure = run_pipeline(pipeline)
    if failure is not None:
        print(f"error: {mask_url(str(failure))}", file=sys.stderr)
        return 1
    summary(record, outputs)
    return 0


def run_several(args: argparse.Namespace, cfg: PipelineConfig, entries: list[SourceEntry],
                plan: ServePlan | None) -> int:
    """Several sources on one model: outputs checked and every source opened before the first frame."""
    from serve.server import WebView
    from stream.multi import MultiSourceError, build_multi_run, plan_outputs

    single = [flag for flag, value in (("--output", args.output), ("--detections", args.detections),
                                       ("--record", args.record), ("--display", args.display)) if value]
    if single:
        return bad_input(ValueError(f"{', '.join(single)} names one output; with several sources use --out DIR "
                                    "(each source writes to DIR/<NAME>/)"))
    outputs, run_record = plan_outputs(cfg, entries, args.out, args.no_video, args.benchmark_log)
    try:
        run = build_multi_run(cfg, entries, outputs, run_record, args.max_frames, args.keep_going)
    except MultiSourceError as exc:
        for failure in exc.failures:
            print(f"error: {failure.line()}", file=sys.stderr)
        return BAD_INPUT_EXIT
    for failure in run.failed:
        print(f"error: {failure.line()} (left out: --keep-going)", file=sys.stderr)
    with stop_on_signals(run), WebView(run.pipelines, plan) if plan else contextlib.nullcontext():
        record = run.run()
    failures = 0
    for pipeline in run.pipelines:
        source_record, failure = run.results[pipeline.source_id]
        print(f"{pipeline.source_id}: {source_record.frames} frames, {source_record.fps:.2f} fps, dropped "
              f"{source_record.dropped}, reconnects {source_record.reconnects} ({source_record.ended}) -> "
              f"{pipeline.outputs.detections.parent}")
        if failure is not None:
            failures += 1
            print(f"error: {mask_url(f'source {pipeline.source_id!r}: {failure}')}", file=sys.stderr)
    print(f"{len(run.pipelines)} sources: {record.frames} frames in {record.seconds:.1f} s, {record.fps:.2f} fps "
          f"in all ({record.backend} {record.precision} on {record.device}, {record.workers} inference workers "
          f"shared); run record: {run.run_record}")
    return 1 if failures else 0


@contextlib.contextmanager
def stop_on_signals(pipeline: Pipeline | MultiRun) -> Iterator[None]:
    """SIGINT/SIGTERM: the first stops at the source and lets frames in flight drain, a second stops now."""

    def on_signal(signum: int, _frame) -> None:
        if pipeline.stopping:
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
    if record.detector_frames < record.frames:  # detect-every-k, HD base-size passes: say what ran
        print(f"detector on {record.detector_frames} of {record.frames} frames ({record.variant})")
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
