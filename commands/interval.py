"""``driving-detect interval``: sweep model.interval (detect every k-th frame) for FPS and car AP@0.5.

    driving-detect interval --source CLIP --data coco:LABELS.json [--intervals 1,2,3,4,6] [--max-ap-drop 3]
        [--sizes WxH,...] [--max-frames N] [--config FILE] [--out DIR] [--device auto|cpu|cuda] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.common import (SUBCOMMANDS, CommandParser, add_max_frames, add_model_options, bad_input,
                             config_overrides, int_list, run_with_config, size_list)
from core.log import mask_url
from stream.config import PipelineConfig

SUMMARY = SUBCOMMANDS["interval"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--source", required=True, help="video file whose frames the labels are from")
    parser.add_argument("--data", required=True, metavar="FORMAT:PATH",
                        help="labels of some of its frames, file names ending _<frame number>")
    parser.add_argument("--intervals", type=int_list, default=[1, 2, 3, 4, 6], help="default 1,2,3,4,6")
    parser.add_argument("--max-ap-drop", type=float, default=3.0,
                        help="car AP@0.5 points (x100) the recommendation may give up against k=1 (default 3)")
    parser.add_argument("--sizes", type=size_list, metavar="WxH,...",
                        help="the source scaled by ffmpeg to each size and swept at each, the labels scaled with "
                             "it, side by side (e.g. 640x360,1280x720,1920x1080; default: the source as it is)")
    add_max_frames(parser, "run each interval on the first N frames only (default: the whole clip)")
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    parser.add_argument("--out", type=Path, help="output folder (default: <output.dir>/interval/<clip>)")
    add_model_options(parser)
    args = parser.parse_intermixed_args(argv)
    if min(args.intervals) < 1 or 1 not in args.intervals or args.max_ap_drop < 0:
        parser.error("--intervals must include 1 and be >= 1; --max-ap-drop must be >= 0")
    return args


def run(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    """The sweep, its modules (and torch) imported only now that the config is known to be good."""
    from bench.interval_sweep import plot, recommend_each, recommendation, sweep, table, write_results
    from stream.sources import SourceError, source_name
    from stream.stages import StageFailed

    try:
        out = args.out or Path(cfg.output.dir) / "interval" / source_name(args.source)
        points = sweep(cfg, args.source, args.data, args.intervals, Path(cfg.output.benchmark_csv), args.max_frames,
                       args.sizes)
        choices = recommend_each(points, args.max_ap_drop)
        settings = {"source": mask_url(args.source), "data": args.data, "overrides": config_overrides(args),
                    "max_ap_drop": args.max_ap_drop, "max_frames": args.max_frames}
        write_results(points, choices, out, settings if args.sizes is None else {**settings, "sizes": args.sizes})
        plot(points, choices, out / "interval.png", f"detect every k-th frame on {source_name(args.source)}")
    except (ValueError, OSError, SourceError, StageFailed) as exc:
        return bad_input(exc)
    print(table(points, choices))
    print(f"{recommendation(choices, args.max_ap_drop)}; results: {out}/interval.csv, interval.json, interval.png")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_with_config(parse_args(argv, prog), run)


if __name__ == "__main__":
    sys.exit(main())
