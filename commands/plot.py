"""``driving-detect plot``: draw runs of the shared benchmark log into one PNG (`bench.plot` does the work).

    driving-detect plot LOG.csv [--out PNG] [--kind stream|benchmark|tune] [--last N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.plot import KINDS, load_rows, plot
from commands.common import SUBCOMMANDS, CommandParser, bad_input

SUMMARY = SUBCOMMANDS["plot"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("log", type=Path, metavar="LOG.csv", help="benchmark CSV log (e.g. outputs/benchmarks.csv)")
    parser.add_argument("--out", type=Path, help="PNG to write (default: the log's path with .png)")
    parser.add_argument("--kind", choices=KINDS, help="only rows of this kind")
    parser.add_argument("--last", type=int, help="only the last N rows (after --kind)")
    args = parser.parse_args(argv)
    if args.last is not None and args.last < 1:
        parser.error("--last must be >= 1")
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command: prints the PNG path; 2 with one ``error:`` line for a missing, empty or unreadable log."""
    args = parse_args(argv, prog)
    try:
        rows = load_rows(args.log, args.kind, args.last)
        path = plot(rows, args.out or args.log.with_suffix(".png"), f"{args.log.name}: {len(rows)} runs")
    except (ValueError, OSError) as exc:
        return bad_input(exc)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
