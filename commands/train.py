"""``driving-detect train``: train a Faster R-CNN end to end from a YAML config (`training.train` does the work).

    driving-detect train --config configs/train-driving.yaml [--resume runs/driving/last.pt] [--out DIR]
                         [--device auto|cpu|cuda] [key=value ...]
    driving-detect train --export CHECKPOINT [CHECKPOINT ...] OUT
                                                      (a checkpoint's model as the bundled fp16 state dict;
                                                      several checkpoints or weights files: their mean)
    driving-detect train --config FILE --pack DIR [--short-side N] [--quality Q]
                                                      (the config's data packed small for a lent GPU)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.common import (SUBCOMMANDS, CommandParser, add_model_options, bad_input, config_overrides,
                             start_logging)
from core.config import ConfigError, load_config
from training.config import TrainConfig

SUMMARY = SUBCOMMANDS["train"]
PACK_QUALITY = 60  # WebP quality of --pack: our training sets in 41 MB at a 416 short side


def parse_args(argv: list[str] | None, prog: str | None = None) -> tuple[CommandParser, argparse.Namespace]:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--config", help="training YAML (e.g. configs/train-driving.yaml)")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from")
    parser.add_argument("--out", metavar="DIR", help="folder for checkpoints and history (overrides out_dir)")
    parser.add_argument("--export", nargs="+", metavar="CHECKPOINT", type=Path,
                        help="CHECKPOINT [CHECKPOINT ...] OUT: write the model (several: their element-wise mean, "
                             "a weight average) as an fp16 state dict to OUT and exit")
    parser.add_argument("--pack", metavar="DIR", type=Path,
                        help="write the config's training data, shrunk, and DIR/train.yaml to train on it, and exit")
    parser.add_argument("--short-side", type=int,
                        help="--pack: shrink images to this short side (default: the largest of train_min_sizes)")
    parser.add_argument("--quality", type=int, help=f"--pack: WebP quality, 1-100 (default {PACK_QUALITY})")
    add_model_options(parser, example="epochs=3 (training keys are top-level)")
    return parser, parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser, args = parse_args(argv, prog)
    start_logging(args)
    if args.export:
        if len(args.export) < 2:
            parser.error("--export takes one or more checkpoints, then the file to write")
        from training.train import export_fp16

        *sources, out = args.export
        try:
            export_fp16(sources, out)
        except (ValueError, OSError) as exc:  # a bad checkpoint file, or models that differ
            return bad_input(exc)
        mean = f", the mean of {len(sources)}" if len(sources) > 1 else ""
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB{mean})")
        return 0
    if not args.config:
        parser.error("--config is required")
    if not args.pack and (args.short_side is not None or args.quality is not None):
        parser.error("--short-side and --quality go with --pack")
    overrides = config_overrides(args, device_key="device") + ([f"out_dir={args.out}"] if args.out else [])
    try:
        cfg = load_config(TrainConfig, args.config, overrides)
    except ConfigError as exc:  # before torch is imported
        return bad_input(exc)
    if args.pack:
        from training.pack import write_packed

        try:
            short_side = max(cfg.train_min_sizes) if args.short_side is None else args.short_side
            quality = PACK_QUALITY if args.quality is None else args.quality
            config = write_packed(cfg, args.pack, short_side, quality)
        except (ValueError, OSError) as exc:  # data
            return bad_input(exc)
        print(f"packed into {args.pack}: train with --config {config}")
        return 0
    from training.train import train

    try:
        last = train(cfg, args.resume)
    except (ValueError, OSError) as exc:  # data, weights, a bad --resume file
        return bad_input(exc)
    print(f"checkpoint: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
