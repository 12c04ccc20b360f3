"""``driving-detect benchmark``: model-only vs threaded pipeline vs a serial loop (`bench.benchmark` does the work).

    driving-detect benchmark --flops [--sizes WxH,...] [--models NAME,...] [key=value ...]
    driving-detect benchmark --source CLIP [--config FILE] [--max-frames N] [--repeats R] [--sizes WxH,...]
        [--backends auto,torch,onnx,openvino-int8] [--models NAME[:WEIGHTS],...] [--benchmark-log CSV]
        [--device auto|cpu|cuda] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.choices import BACKENDS
from commands.common import (SUBCOMMANDS, CommandParser, add_max_frames, add_model_options, backend_list,
                             bad_input, positive_int, run_with_config, size_list)
from stream.config import PipelineConfig

SUMMARY = SUBCOMMANDS["benchmark"]
FLOPS_SIZES = ("640x360", "1280x720", "1920x1080")


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--source", help="video file to benchmark on (required unless --flops)")
    parser.add_argument("--flops", action="store_true",
                        help="print each model's GFLOPs a frame per part at each --sizes frame size (default "
                             f"{','.join(FLOPS_SIZES)}) and exit; no video is read")
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    add_max_frames(parser, "frames of the source per measurement (default 100)", default=100)
    parser.add_alias("--frames", "--max-frames")
    parser.add_argument("--repeats", type=positive_int, default=3, help="measurements per variant (default 3)")
    parser.add_argument("--sizes", type=size_list, metavar="WxH,...",
                        help="the source scaled by ffmpeg to each size, measured side by side "
                             "(e.g. 640x360,1280x720,1920x1080; default: the source as it is)")
    parser.add_argument("--backends", type=backend_list,
                        help=f"comma-separated: {', '.join(BACKENDS)} (default: the config's model.backend, "
                             f"auto in the default config)")
    parser.add_argument("--models", default="", help="comma-separated NAME[:WEIGHTS] to compare (default: config's)")
    parser.add_argument("--onnx-dir", default="outputs/onnx", help="where ONNX exports are cached")
    parser.add_argument("--benchmark-log", default="outputs/benchmarks.csv", help="CSV log the records go to")
    add_model_options(parser)
    args = parser.parse_intermixed_args(argv)
    if not args.flops and not args.source:
        parser.error("the following arguments are required: --source")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    return args


def run(args: argparse.Namespace, base: PipelineConfig) -> int:
    """The measurements, their modules (and torch) imported only now that the config is known to be good."""
    from bench.benchmark import ceilings, compare, flops_table, table
    from stream.sources import SourceError

    if args.flops:
        try:
            print(flops_table(base, args.models, args.sizes or list(FLOPS_SIZES)))
        except ValueError as exc:  # a model name --models gave that does not exist
            return bad_input(exc)
        return 0

    try:
        results, cpu = compare(base, args.source, args.max_frames, args.repeats, args.backends or [base.model.backend],
                               args.models, Path(args.onnx_dir), Path(args.benchmark_log), args.sizes)
    except (SourceError, ValueError, OSError) as exc:
        return bad_input(exc)
    print(table(results, cpu))
    print(ceilings(cpu))
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_with_config(parse_args(argv, prog), run)


if __name__ == "__main__":
    sys.exit(main())
