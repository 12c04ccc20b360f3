"""``driving-detect evaluate``: AP per class on a labelled dataset (`evaluation.evaluate` does the work).

    driving-detect evaluate --data voc:../shared/data/roadsigns --split ../shared/data/roadsigns/val.txt \\
        [--config configs/default.yaml] [--out DIR] [--report out.json] [--plots DIR] [--skip-bad]
        [--device auto|cpu|cuda] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.common import SUBCOMMANDS, CommandParser, add_model_options, bad_input, config_overrides, run_with_config
from stream.config import PipelineConfig

SUMMARY = SUBCOMMANDS["evaluate"]


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    """The command line; overrides are the pipeline config's dotted keys."""
    parser = CommandParser(prog=prog, description=SUMMARY)
    parser.add_argument("--data", required=True, metavar="FORMAT:PATH", help="voc|kitti|coco|yolo:PATH")
    parser.add_argument("--split", help="file of image stems to evaluate (one per line)")
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder for report.json and pr_curves.png (default: <output.dir>/eval/<dataset>)")
    parser.add_argument("--report", type=Path, help="JSON report (default: <out>/report.json)")
    parser.add_argument("--plots", type=Path, help="folder for pr_curves.png (default: beside the report)")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad annotations instead of stopping")
    add_model_options(parser)
    return parser.parse_intermixed_args(argv)


def run(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    """The evaluation, its modules (and torch) imported only now that the config is known to be good."""
    from evaluation.evaluate import dataset_name, evaluate_dataset, evaluation_nms, format_table

    try:
        out = args.out or Path(cfg.output.dir) / "eval" / dataset_name(args.data, args.split)
        report_path = args.report or out / "report.json"
        report, plot_path = evaluate_dataset(cfg.model, evaluation_nms(cfg.nms, config_overrides(args)), args.data,
                                             args.split, report_path, args.plots, args.skip_bad)
    except (ValueError, OSError) as exc:  # Dataset/WeightsError, bad device: ValueErrors
        return bad_input(exc)
    print(format_table(report))
    print(f"{report.images} images in {report.seconds:.1f} s; report: {report_path}; plot: {plot_path}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """0 on success, 2 with one ``error:`` line for bad input (config, data, weights, files)."""
    return run_with_config(parse_args(argv, prog), run)


if __name__ == "__main__":
    sys.exit(main())
