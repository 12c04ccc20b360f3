"""``driving-detect benchmark``: model-only vs threaded pipeline vs a serial loop (`bench.benchmark` does the work).

    driving-detect benchmark --source CLIP [--config FILE] [--frames N] [--repeats R]
        [--backends torch,onnx,openvino-int8] [--models NAME[:WEIGHTS],...] [--benchmark-log CSV] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.benchmark import BACKENDS, ceilings, compare, table
from commands.common import SUBCOMMANDS, CommandParser, bad_input
from core.config import ConfigError
from core.log import setup_logging
from stream.config import load_pipeline_config
from stream.sources import SourceError

SUMMARY = SUBCOMMANDS["benchmark"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--source", required=True, help="video file to benchmark on")
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    parser.add_argument("--frames", type=int, default=100, help="frames per measurement (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per variant (default 3)")
    parser.add_argument("--backends", default="torch",
                        help=f"comma-separated: {', '.join(BACKENDS)} (default torch)")
    parser.add_argument("--models", default="", help="comma-separated NAME[:WEIGHTS] to compare (default: config's)")
    parser.add_argument("--onnx-dir", default="outputs/onnx", help="where ONNX exports are cached")
    parser.add_argument("--benchmark-log", default="outputs/benchmarks.csv", help="CSV log the records go to")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not set(args.backends) <= set(BACKENDS) or args.frames < 1 or args.repeats < 1:
        parser.error(f"--backends takes {', '.join(BACKENDS)}; --frames and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    setup_logging()
    try:
        base = load_pipeline_config(args.config, args.overrides)
        results, cpu = compare(base, args.source, args.frames, args.repeats, args.backends, args.models,
                          Path(args.onnx_dir), Path(args.benchmark_log))
    except (ConfigError, SourceError, ValueError, OSError) as exc:
        return bad_input(exc)
    print(table(results, cpu))
    print(ceilings(cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
