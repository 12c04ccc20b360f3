"""``driving-detect batch``: many videos and image folders through the stream pipeline
on Ray workers, resumable, with a fleet summary.

    driving-detect batch [SOURCE ...] [--source SOURCE ...] --out DIR [--config FILE] [--ray-address ADDR]
                         [--workers N] [--no-video] [--max-frames N] [--device auto|cpu|cuda] [--quiet]
                         [key=value ...]
"""
from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from commands.common import (SUBCOMMANDS, CommandParser, add_max_frames, add_model_options, bad_input,
                             config_overrides, overrides_help, run_with_config)
from fleet.config import BatchError, FleetConfig, load_fleet_config

if TYPE_CHECKING:
    from fleet.batch import BatchResult

SUMMARY = SUBCOMMANDS["batch"]
log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("sources", nargs="*", metavar="SOURCE",
                        help="video files, folders (walked for videos and image folders) or quoted globs; "
                             "section.key=value arguments are " + overrides_help("model.top_n=50"))
    parser.add_argument("--source", action="append", default=[], dest="more_sources", metavar="SOURCE",
                        help="a SOURCE as in every other command (repeatable; adds to the positional ones)")
    parser.add_argument("--out", required=True, help="output folder: DIR/<relative path>/, manifest, summary")
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml), with an optional batch: section")
    parser.add_argument("--ray-address", help="an existing Ray cluster (host:port, ray://host:port or auto); "
                                              "default: an embedded local Ray")
    parser.add_argument("--workers", type=int, help="fleet workers, one model each (overrides batch.workers)")
    parser.add_argument("--no-video", action="store_true", help="write no annotated videos")
    add_max_frames(parser, "stop each file after N frames")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only, no progress bar")
    add_model_options(parser, overrides=False)  # key=value overrides share the positional list with SOURCES
    args = parser.parse_intermixed_args(argv)
    args.overrides = [s for s in args.sources if is_override(s)]
    args.sources = [s for s in args.sources if not is_override(s)] + args.more_sources
    if not args.sources:
        parser.error("no SOURCE given")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
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


def run(args: argparse.Namespace, cfg: FleetConfig) -> int:
    """The batch, its modules (Ray, torch) imported only now that the config is known to be good."""
    from fleet.batch import run_batch
    from stream.run import RUN_INPUT_ERRORS

    # SIGTERM as an exit, so the embedded Ray is shut down (its workers run in sessions of their own and would
    # outlive a plain kill); the manifest says which files were running, and a rerun does them again.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        result = run_batch(cfg, args.sources, args.out, args.ray_address, args.no_video, args.max_frames,
                           progress=not args.quiet)
    except (BatchError, *RUN_INPUT_ERRORS) as exc:
        return bad_input(exc)
    print_summary(result)
    return 1 if result.failed else 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    overrides = config_overrides(args) + ([f"batch.workers={args.workers}"] if args.workers else [])
    return run_with_config(args, run, load_fleet_config, overrides)


if __name__ == "__main__":
    sys.exit(main())
