"""``driving-detect export``: write an ONNX file with the project metadata (`detector.export` does the work).

    driving-detect export --model NAME --weights W --top-n N --out model.onnx
        [--min-size S --max-size S --score-thresh F --opset K --precision fp32|int8]
        [--calibration SPEC ... --calibration-frames N]   (int8: the frames it is calibrated on)
        [--save-ranges PATH]   (int8: calibrate on the frames and save the activation ranges there too)
        [--device auto|cpu|cuda]   (where the written file is run once: on CUDA, TensorRT builds its engine)
        [model.KEY=VALUE ...]  (on top of the flags, e.g. model.top_n=5)

The graph is traced on the CPU whatever ``--device`` says: an ONNX file is the same for every device, and byte for
byte reproducible, which the export cache and the saved int8 ranges rely on. ``--device`` is where the file must
run: the project's backend for a ``model.onnx_path`` runs it there on one frame before the command reports success.

An int8 export of a bundled model with the default calibration set uses the ranges shipped with its weights
(`detector.export_cache.ranges_file`, written by ``--save-ranges``), so it needs no calibration data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.common import (SUBCOMMANDS, CommandParser, add_model_options, bad_input, config_overrides,
                             start_logging)
from core.config import ConfigError, with_overrides
from detector.calibration import DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_FRAMES, CalibrationError
from detector.config import (DEFAULT_OPSET, DEFAULT_SCORE_THRESH, DEFAULT_TOP_N, EXPORT_PRECISIONS, MODEL_NAMES,
                             OPSETS, ExportConfig, ModelConfig)
from detector.datasets import DataSource

SUMMARY = SUBCOMMANDS["export"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--model", required=True, choices=MODEL_NAMES, metavar="NAME", help=" | ".join(MODEL_NAMES))
    parser.add_argument("--weights", default="default", help="default | coco | random | a weights file")
    parser.add_argument("--top-n", type=int, default=DEFAULT_TOP_N,
                        help=f"RPN proposals kept at test time (default {DEFAULT_TOP_N})")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--min-size", type=int, default=0, help="0: the model's default")
    parser.add_argument("--max-size", type=int, default=0, help="0: the model's default")
    parser.add_argument("--score-thresh", type=float, default=DEFAULT_SCORE_THRESH,
                        help="candidate floor before the NMS stage")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, choices=OPSETS, metavar="K",
                        help=f"ONNX opset, {OPSETS[0]}..{OPSETS[-1]} (default {DEFAULT_OPSET})")
    parser.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32",
                        help="fp32 (default; same results as torch) or int8 (static quantization, calibrated)")
    parser.add_argument("--calibration", action="append", metavar="SPEC",
                        help="int8: a dataset (FORMAT:PATH) whose images calibrate it; repeatable (default: the "
                             "training splits of " + ", ".join(s.spec for s in DEFAULT_CALIBRATION) + ")")
    parser.add_argument("--calibration-frames", type=int, default=DEFAULT_CALIBRATION_FRAMES, metavar="N",
                        help=f"int8: how many calibration frames (default {DEFAULT_CALIBRATION_FRAMES})")
    parser.add_argument("--save-ranges", type=Path, metavar="PATH",
                        help="int8: calibrate on the frames and also save the activation ranges to PATH (JSON), "
                             "from which later int8 exports of this graph build without the frames")
    add_model_options(parser, example="model.top_n=5 (model.* keys, on top of the flags)",
                      device_help="where the written graph must run: it is run there on one frame (on CUDA by "
                                  "TensorRT, whose engine is built and cached now); the graph is traced on the CPU")
    args = parser.parse_intermixed_args(argv)
    if args.top_n < 1 or args.min_size < 0 or args.max_size < 0 or not 0.0 <= args.score_thresh < 1.0:
        parser.error("--top-n must be >= 1, sizes >= 0 and --score-thresh in [0, 1)")
    if args.calibration_frames < 1:
        parser.error("--calibration-frames must be >= 1")
    if args.save_ranges and (args.precision != "int8" or args.opset != DEFAULT_OPSET):
        parser.error(f"--save-ranges needs --precision int8 and the export cache's opset ({DEFAULT_OPSET})")
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    start_logging(args)
    sources = [DataSource(spec) for spec in args.calibration] if args.calibration else list(DEFAULT_CALIBRATION)
    flags = ModelConfig(name=args.model, weights=args.weights, top_n=args.top_n, min_size=args.min_size,
                        max_size=args.max_size, score_thresh=args.score_thresh, calibration=sources,
                        calibration_frames=args.calibration_frames)
    try:
        cfg = with_overrides(ExportConfig(flags), config_overrides(args)).model
    except ConfigError as exc:  # before torch is imported
        return bad_input(exc)
    from detector.backend import check_exported, export_device
    from detector.backend_onnx import OnnxModelError
    from detector.export import export
    from detector.export_cache import calibration_input, int8_calibration, save_ranges
    from detector.weights import WeightsError

    try:
        device = export_device(cfg, args.precision)
        calibration = None
        if args.save_ranges:
            calibration = save_ranges(cfg, args.save_ranges)
            print(f"wrote {args.save_ranges} (int8 activation ranges)")
        elif args.precision == "int8":
            calibration = calibration_input(int8_calibration(cfg)[1])
        proto = export(cfg.name, cfg.weights, cfg.top_n, args.out, cfg.min_size, cfg.max_size, cfg.score_thresh,
                       args.opset, args.precision, calibration)
        backend = check_exported(cfg, args.out, device)
    except (ConfigError, WeightsError, CalibrationError, OnnxModelError, OSError) as exc:
        return bad_input(exc)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, opset {opset}, {args.precision}, checked; "
          f"ran a frame on {backend.device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
