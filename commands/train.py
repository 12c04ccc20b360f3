"""``driving-detect train``: train a Faster R-CNN end to end from a YAML config (`training.train` does the work).

    driving-detect train --config configs/train-driving.yaml [--resume runs/driving/last.pt] [key=value ...]
    driving-detect train --export CHECKPOINT OUT      (a checkpoint's model as the bundled fp16 state dict)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.common import SUBCOMMANDS, CommandParser, bad_input
from core.config import load_config
from core.log import setup_logging
from training.train import TrainConfig, export_fp16, train

SUMMARY = SUBCOMMANDS["train"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> tuple[CommandParser, argparse.Namespace]:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--config", help="training YAML (e.g. configs/train-driving.yaml)")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from")
    parser.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "OUT"), type=Path,
                        help="write CHECKPOINT's model as an fp16 state dict to OUT and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser, args = parse_args(argv, prog)
    setup_logging()
    try:
        if args.export:
            export_fp16(*args.export)
            print(f"wrote {args.export[1]} ({args.export[1].stat().st_size / 1e6:.1f} MB)")
            return 0
        if not args.config:
            parser.error("--config is required")
        last = train(load_config(TrainConfig, args.config, args.overrides), args.resume)
    except (ValueError, OSError) as exc:  # config, data, weights, a bad --resume file
        return bad_input(exc)
    print(f"checkpoint: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
