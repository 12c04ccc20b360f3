"""``driving-detect batch`` (also ``python -m fleet``): many videos and image folders through the stream pipeline
on Ray workers, resumable, with a fleet summary.

    driving-detect batch SOURCES... --out DIR [--config FILE] [--ray-address ADDR] [--workers N] [--no-video]
                         [--max-frames N] [--quiet] [key=value ...]
"""
from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from pathlib import Path

from commands.common import SUBCOMMANDS, CommandParser, bad_input
from core.log import setup_logging
from fleet.batch import BatchResult, run_batch
from fleet.config import BatchError, load_fleet_config
from stream.run import RUN_INPUT_ERRORS

SUMMARY = SUBCOMMANDS["batch"]
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="video files, folders (walked for videos and image folders) or quoted globs; "
                             "section.key=value arguments are config overrides, e.g. model.top_n=50")
    parser.add_argument("--out", required=True, help="output folder: DIR/<relative path>/, manifest, summary")
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml), with an optional batch: section")
    parser.add_argument("--ray-address", help="an existing Ray cluster (host:port, ray://host:port or auto); "
                                              "default: an embedded local Ray")
    parser.add_argument("--workers", type=int, help="fleet workers, one model each (overrides batch.workers)")
    parser.add_argument("--no-video", action="store_true", help="write no annotated videos")
    parser.add_argument("--max-frames", type=int, help="stop each file after N frames")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only, no progress bar")
    # key=value overrides share the positional list with SOURCES (`is_override` tells them apart)
    args = parser.parse_intermixed_args(argv)
    args.overrides = [s for s in args.sources if is_override(s)]
    args.sources = [s for s in args.sources if not is_override(s)]
    if not args.sources:
        parser.error("no SOURCE given")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    return args


def is_override(arg: str) -> bool:
    """``section.key=value`` and no such file: a config override."""
    key, sep, _ = arg.partition("=")
    return bool(sep) and re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+", key) is not None and not Path(arg).exists()


def print_summary(result: BatchResult) -> None:
    done = sum(row["state"] == "done" for row in result.rows)
    earlier = sum(row["state"] == "done earlier" for row in result.rows)
    print(f"{len(result.rows)} files: {done} done, {earlier} done earlier (skipped), {len(result.failed)} failed")
    if result.record is not None:
        r = result.record
        print(f"fleet: {r.frames} frames in {r.seconds:.1f} s: {r.fps:.2f} fps on {result.workers} workers "
              f"({r.variant}; {r.model}, {r.backend} on {r.device})")
    for row in result.failed:
        print(f"failed: {row['source']}: {row['error']}")
    print("summary:   " + ", ".join(str(result.paths[k]) for k in ("summary_csv", "summary_json")))
    if "record" in result.paths:
        print(f"benchmark: {result.paths['record']} (+ rows in {result.paths['log']})")


def run(args: argparse.Namespace) -> int:
    overrides = args.overrides + ([f"batch.workers={args.workers}"] if args.workers else [])
    cfg = load_fleet_config(args.config, overrides)
    result = run_batch(cfg, args.sources, args.out, args.ray_address, args.no_video, args.max_frames,
                       progress=not args.quiet)
    print_summary(result)
    return 1 if result.failed else 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    setup_logging(args.quiet)
    # SIGTERM as an exit, so the embedded Ray is shut down (its workers run in sessions of their own and would
    # outlive a plain kill); the manifest says which files were running, and a rerun does them again.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        return run(args)
    except (BatchError, *RUN_INPUT_ERRORS) as exc:
        return bad_input(exc)


if __name__ == "__main__":
    sys.exit(main())
