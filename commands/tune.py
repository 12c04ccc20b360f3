"""``driving-detect tune``: sweep top-N (and input size, backend) for FPS and mAP@0.5 (`bench.tune` does the work).

    driving-detect tune --config FILE --clip VIDEO --data FORMAT:PATH [--split FILE] [--target-fps F]
        [--max-map-drop P] [--top-n 10,25,50,100,150,300,1000] [--min-sizes S1,S2]
        [--backends torch,onnx,openvino-int8]
        [--frames N] [--repeats R] [--out DIR] [--benchmark-log CSV] [--write-config OUT.yaml] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.benchmark import BACKENDS
from bench.tune import SWEEP_TOP_N, TuneRequest, run, table
from commands.common import SUBCOMMANDS, CommandParser, bad_input, int_list
from core.log import setup_logging
from stream.sources import SourceError
from stream.stages import StageFailed

SUMMARY = SUBCOMMANDS["tune"]


def name_list(text: str) -> list[str]:
    """``"torch,onnx"`` -> ``["torch", "onnx"]``, only known backends."""
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names or not set(names) <= set(BACKENDS):
        raise argparse.ArgumentTypeError(f"'{text}': backends are {', '.join(BACKENDS)}")
    return names


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    parser.add_argument("--clip", required=True, help="video file to measure FPS on")
    parser.add_argument("--data", required=True, metavar="FORMAT:PATH",
                        help="labelled set for mAP@0.5: voc|kitti|coco|yolo:PATH")
    parser.add_argument("--split", help="file of image stems to evaluate (one per line)")
    parser.add_argument("--target-fps", type=float, help="pipeline FPS the choice must reach (median)")
    parser.add_argument("--max-map-drop", type=float, default=1.0,
                        help="mAP@0.5 points (x100) the fallback may give up for speed (default 1)")
    parser.add_argument("--top-n", type=int_list, default=list(SWEEP_TOP_N),
                        help=f"default {','.join(map(str, SWEEP_TOP_N))}")
    parser.add_argument("--min-sizes", type=int_list, help="input min sizes to sweep (default: the config's)")
    parser.add_argument("--backends", type=name_list, help="torch and/or onnx (default: the config's backend)")
    parser.add_argument("--frames", type=int, default=100, help="clip frames per measurement (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (default 3)")
    parser.add_argument("--out", type=Path, help="output folder (default: <output.dir>/tune/<clip>)")
    parser.add_argument("--onnx-dir", type=Path, default=Path("outputs/onnx"), help="where ONNX exports are cached")
    parser.add_argument("--benchmark-log", type=Path, help="shared CSV log (default: output.benchmark_csv)")
    parser.add_argument("--write-config", type=Path, metavar="OUT.yaml", help="write the tuned pipeline config")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.device=cpu")
    args = parser.parse_intermixed_args(argv)
    if args.frames < 1 or args.repeats < 1 or min(args.top_n) < 1 or min(args.min_sizes or [0]) < 0:
        parser.error("--frames, --repeats and --top-n values must be >= 1; --min-sizes values >= 0")
    if (args.target_fps is not None and args.target_fps <= 0) or args.max_map_drop < 0:
        parser.error("--target-fps must be > 0 and --max-map-drop >= 0")
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """0 on success, 2 with one ``error:`` line for bad input (config, data, clip, weights, files)."""
    req = TuneRequest(**vars(parse_args(argv, prog)))
    setup_logging()
    try:
        points, front, rec, out = run(req)
    except (ValueError, OSError, SourceError, StageFailed) as exc:
        return bad_input(exc)
    print(table(points, front, rec))
    print(f"recommended by rule {rec.rule}: {rec.reason}")
    written = f"; config: {req.write_config}" if req.write_config else ""
    print(f"results: {out}/tune.csv, tune.json, tune.png; log: {req.benchmark_log}{written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
