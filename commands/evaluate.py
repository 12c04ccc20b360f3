"""``driving-detect evaluate``: AP per class on a labelled dataset (`evaluation.evaluate` does the work).

    driving-detect evaluate --data voc:../shared/data/roadsigns --split ../shared/data/roadsigns/val.txt \\
        [--config configs/default.yaml] [--out DIR] [--report out.json] [--plots DIR] [--skip-bad]
        [--resamples N] [--versus "key=value ..."] [--device auto|cpu|cuda] [key=value ...]

``--versus`` runs the same images a second time with more overrides on top (e.g. another model) and reports, per
class, the AP@0.5 difference with its paired-bootstrap 95% interval: whether a gap is larger than the val set
can tell.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from commands.common import (SUBCOMMANDS, CommandParser, add_model_options, bad_input, config_overrides,
                             non_negative_int, run_with_config)
from stream.config import PipelineConfig, load_pipeline_config

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
    parser.add_argument("--resamples", type=non_negative_int, metavar="N",
                        help="bootstrap resamples of the images for the 95%% interval of every AP@0.5 and difference "
                             "(default 1000; 0: no intervals)")
    parser.add_argument("--versus", metavar="'key=value ...'",
                        help="also evaluate with these overrides on top (e.g. 'model.name=driving_mobilenet_v2_fpn') "
                             "and report the per-class AP@0.5 differences with their 95%% intervals")
    add_model_options(parser)
    return parser.parse_intermixed_args(argv)


def run(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    """The evaluation, its modules (and torch) imported only now that the config is known to be good."""
    overrides = config_overrides(args)
    other: PipelineConfig | None = None
    extra: list[str] = []
    if args.versus is not None:
        try:
            extra = shlex.split(args.versus)
            if not extra:
                raise ValueError("--versus needs key=value overrides, e.g. --versus 'model.name=driving_mobilenet_v2_fpn'")
            other = load_pipeline_config(args.config, [*overrides, *extra])
        except ValueError as exc:  # a ConfigError, or shlex's unbalanced quotes
            return bad_input(exc)

    from evaluation.bootstrap import DEFAULT_RESAMPLES
    from evaluation.evaluate import dataset_name, evaluate_dataset, evaluation_nms, format_table, format_versus

    resamples = DEFAULT_RESAMPLES if args.resamples is None else args.resamples
    versus = None if other is None else (other.model, evaluation_nms(other.nms, [*overrides, *extra]), extra)
    try:
        out = args.out or Path(cfg.output.dir) / "eval" / dataset_name(args.data, args.split)
        report_path = args.report or out / "report.json"
        report, plot_path, comparison = evaluate_dataset(
            cfg.model, evaluation_nms(cfg.nms, overrides), args.data, args.split, report_path, args.plots,
            args.skip_bad, resamples, versus)
    except (ValueError, OSError) as exc:  # Dataset/WeightsError, bad device: ValueErrors
        return bad_input(exc)
    print(format_table(report))
    if comparison is not None:
        print(format_versus(report, comparison))
    print(f"{report.images} images in {report.seconds:.1f} s; report: {report_path}; plot: {plot_path}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """0 on success, 2 with one ``error:`` line for bad input (config, data, weights, files)."""
    return run_with_config(parse_args(argv, prog), run)


if __name__ == "__main__":
    sys.exit(main())
