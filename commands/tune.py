"""``driving-detect tune``: sweep top-N (and input size, backend) for FPS and mAP@0.5 (`bench.tune` does the work).

    driving-detect tune --source VIDEO --data FORMAT:PATH [--config FILE] [--split FILE] [--target-fps F]
        [--max-map-drop P] [--top-n 10,25,50,100,150,300,1000] [--min-sizes S1,S2]
        [--backends auto,torch,onnx,openvino-int8] [--max-frames N] [--repeats R] [--out DIR]
        [--benchmark-log CSV] [--write-config OUT.yaml] [--device auto|cpu|cuda] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.choices import BACKENDS, SWEEP_TOP_N
from commands.common import (SUBCOMMANDS, CommandParser, add_max_frames, add_model_options, backend_list,
                             bad_input, config_overrides, int_list, positive_int, run_with_config)
from stream.config import PipelineConfig

SUMMARY = SUBCOMMANDS["tune"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    parser.add_argument("--source", required=True, help="video file to measure FPS on")
    parser.add_alias("--clip", "--source")
    parser.add_argument("--data", required=True, metavar="FORMAT:PATH",
                        help="labelled set for mAP@0.5: voc|kitti|coco|yolo:PATH")
    parser.add_argument("--split", help="file of image stems to evaluate (one per line)")
    parser.add_argument("--target-fps", type=float, help="pipeline FPS the choice must reach (median)")
    parser.add_argument("--max-map-drop", type=float, default=1.0,
                        help="mAP@0.5 points (x100) the fallback may give up for speed (default 1)")
    parser.add_argument("--top-n", type=int_list, default=list(SWEEP_TOP_N),
                        help=f"default {','.join(map(str, SWEEP_TOP_N))}")
    parser.add_argument("--min-sizes", type=int_list, help="input min sizes to sweep (default: the config's)")
    parser.add_argument("--backends", type=backend_list,
                        help=f"comma-separated: {', '.join(BACKENDS)} (default: the config's model.backend, "
                             f"auto in the default config)")
    add_max_frames(parser, "frames of the source per measurement (default 100)", default=100)
    parser.add_alias("--frames", "--max-frames")
    parser.add_argument("--repeats", type=positive_int, default=3, help="measurements per setting (default 3)")
    parser.add_argument("--out", type=Path, help="output folder (default: <output.dir>/tune/<source name>)")
    parser.add_argument("--onnx-dir", type=Path, default=Path("outputs/onnx"), help="where ONNX exports are cached")
    parser.add_argument("--benchmark-log", type=Path, help="shared CSV log (default: output.benchmark_csv)")
    parser.add_argument("--write-config", type=Path, metavar="OUT.yaml", help="write the tuned pipeline config")
    add_model_options(parser, example="model.min_size=320")
    args = parser.parse_intermixed_args(argv)
    if min(args.top_n) < 1 or min(args.min_sizes or [0]) < 0:
        parser.error("--top-n values must be >= 1; --min-sizes values >= 0")
    if (args.target_fps is not None and args.target_fps <= 0) or args.max_map_drop < 0:
        parser.error("--target-fps must be > 0 and --max-map-drop >= 0")
    return args


def run(args: argparse.Namespace, base: PipelineConfig) -> int:
    """The sweep, its modules (and torch) imported only now that the config is known to be good."""
    from bench.tune import TuneRequest, table
    from bench.tune import run as sweep
    from stream.sources import SourceError
    from stream.stages import StageFailed

    req = TuneRequest(clip=args.source, data=args.data, split=args.split, config=args.config,
                      overrides=config_overrides(args), target_fps=args.target_fps, max_map_drop=args.max_map_drop,
                      top_n=args.top_n, min_sizes=args.min_sizes, backends=args.backends, frames=args.max_frames,
                      repeats=args.repeats, out=args.out, onnx_dir=args.onnx_dir, benchmark_log=args.benchmark_log,
                      write_config=args.write_config)
    try:
        points, front, rec, out = sweep(req, base)
    except (ValueError, OSError, SourceError, StageFailed) as exc:
        return bad_input(exc)
    print(table(points, front, rec))
    print(f"recommended by rule {rec.rule}: {rec.reason}")
    written = f"; config: {req.write_config}" if req.write_config else ""
    print(f"results: {out}/tune.csv, tune.json, tune.png; log: {req.benchmark_log}{written}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """0 on success, 2 with one ``error:`` line for bad input (config, data, clip, weights, files)."""
    return run_with_config(parse_args(argv, prog), run)


if __name__ == "__main__":
    sys.exit(main())
