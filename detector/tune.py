"""Tune the RPN top-N for speed: measure FPS and mAP@0.5 per setting in one run and recommend one.

    python -m detector.tune --config FILE --clip VIDEO --data FORMAT:PATH [--split FILE] [--target-fps F]
        [--max-map-drop P] [--top-n 10,25,50,100,150,300,1000] [--min-sizes S1,S2]
        [--backends torch,onnx,onnx-int8]
        [--frames N] [--repeats R] [--out DIR] [--benchmark-log CSV] [--write-config OUT.yaml] [key=value ...]

Each setting (backend x input min size x top-N) is measured on the clip R times, model-only and through the
threaded pipeline (warm-up excluded), and evaluated on the labelled set with the same backend. The choice is the
most accurate setting whose median pipeline FPS meets --target-fps; when none does (or no target is given) it
is the fastest setting within --max-map-drop points (mAP@0.5 x 100) of the best mAP@0.5. Writes tune.csv,
tune.json and tune.png (FPS vs mAP@0.5 with the Pareto front) to --out, and appends every measurement to the
shared benchmark log as kind ``tune``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure

from detector.backend import Backend, NmsStage, build_backend
from detector.cli import CommandParser, bad_input, setup_logging
from detector.config import to_dict
from detector.datasets import Dataset, DatasetError, load_dataset
from detector.evaluate import dataset_name, evaluate_backend, evaluation_nms
from detector.labels import LABELS
from detector.models import set_top_n
from stream.benchmark import BACKENDS, WARMUP, backend_config, decode, measure
from stream.config import PipelineConfig, load_pipeline_config
from stream.metrics import BenchmarkRecord, write_record
from stream.sources import SourceError, mask_url, source_name
from stream.stages import StageFailed

log = logging.getLogger("detector.tune")
VARIANTS = ("model-only", "pipeline")
DEFAULT_TOP_N = "10,25,50,100,150,300,1000"


@dataclass(frozen=True)
class Setting:
    """One point of the sweep; ``min_size`` 0 means the model's default input size."""

    backend: str
    min_size: int
    top_n: int


@dataclass
class Measurement:
    """What one setting achieved: FPS per repeat (model-only and pipeline) and accuracy on the labelled set."""

    setting: Setting
    model_fps: list[float]
    pipeline_fps: list[float]
    map50: float
    ap50: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Median pipeline FPS: what a user of the pipeline gets, so the front and the choice rank by it."""
        return statistics.median(self.pipeline_fps)

    def row(self) -> dict[str, object]:
        """Flat CSV/JSON columns: the setting, FPS median/min/max per variant, mAP@0.5 and per-class AP@0.5."""
        row: dict[str, object] = dataclasses.asdict(self.setting)
        for name, fps in (("model", self.model_fps), ("pipeline", self.pipeline_fps)):
            row.update({f"{name}_fps_median": round(statistics.median(fps), 2),
                        f"{name}_fps_min": round(min(fps), 2), f"{name}_fps_max": round(max(fps), 2)})
        row["map50"] = round(self.map50, 4)
        row.update({f"ap50_{name}": round(ap, 4) for name, ap in self.ap50.items()})
        return row


@dataclass(frozen=True)
class Recommendation:
    """The chosen measurement, the rule that chose it (``target-fps`` or ``max-map-drop``) and why, with numbers."""

    choice: Measurement
    rule: str
    reason: str


def dominates(a: Measurement, b: Measurement) -> bool:
    """``a`` is at least as fast and as accurate as ``b``, and strictly better in one of them."""
    return a.fps >= b.fps and a.map50 >= b.map50 and (a.fps > b.fps or a.map50 > b.map50)


def pareto_front(points: Sequence[Measurement]) -> list[Measurement]:
    """The settings no other setting beats on both pipeline FPS and mAP@0.5, slowest first (equal points all stay)."""
    return sorted((p for p in points if not any(dominates(q, p) for q in points)), key=lambda p: (p.fps, p.map50))


def recommend(points: Sequence[Measurement], target_fps: float | None, max_map_drop: float) -> Recommendation:
    """Most accurate setting meeting ``target_fps``, else the fastest within ``max_map_drop`` points of the best.

    Ties on the rule's measure go to the other measure (accuracy or speed), then to the smaller top-N.
    """
    if not points:
        raise ValueError("no settings were measured")
    if target_fps is not None:
        fast_enough = [p for p in points if p.fps >= target_fps]
        if fast_enough:
            choice = max(fast_enough, key=lambda p: (p.map50, p.fps, -p.setting.top_n))
            return Recommendation(choice, "target-fps", f"most accurate of {len(fast_enough)} setting(s) at >= "
                                                        f"{target_fps:g} FPS: {summary(choice)}")
    best = max(p.map50 for p in points)
    near = [p for p in points if p.map50 >= best - max_map_drop / 100 - 1e-9]
    choice = max(near, key=lambda p: (p.fps, p.map50, -p.setting.top_n))
    missed = f"no setting reaches {target_fps:g} FPS; " if target_fps is not None else ""
    return Recommendation(choice, "max-map-drop", f"{missed}fastest setting within {max_map_drop:g} points of the "
                                                  f"best mAP@0.5 ({best:.4f}): {summary(choice)}")


def summary(point: Measurement) -> str:
    """The setting and its numbers in one line (for the log, the reason and the written config's header)."""
    s = point.setting
    return (f"{s.backend}, min size {s.min_size or 'default'}, top-N {s.top_n}: pipeline {point.fps:.2f} FPS "
            f"(median of {len(point.pipeline_fps)}), model-only {statistics.median(point.model_fps):.2f} FPS, "
            f"mAP@0.5 {point.map50:.4f}")


def setting_config(base: PipelineConfig, setting: Setting, onnx_dir: Path) -> PipelineConfig:
    """``base`` with the setting applied (ONNX: exported once per setting, cached in ``onnx_dir``)."""
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, top_n=setting.top_n,
                                                              min_size=setting.min_size))
    return backend_config(cfg, setting.backend, onnx_dir)


def configured_backends(base: PipelineConfig, backend: str, min_size: int, top_ns: list[int],
                        onnx_dir: Path) -> Iterator[tuple[Setting, PipelineConfig, Backend]]:
    """Each top-N's setting, config and backend: torch builds the model once and changes top-N in place,
    ONNX loads one export per top-N (top-N is baked into the graph)."""
    shared = None
    for top_n in top_ns:
        setting = Setting(backend, min_size, top_n)
        cfg = setting_config(base, setting, onnx_dir)
        if backend != "torch":
            yield setting, cfg, build_backend(cfg.model)
            continue
        if shared is None:
            shared = build_backend(cfg.model)
        set_top_n(shared.model, top_n)
        yield setting, cfg, shared


def synchronize(backend: Backend) -> None:
    """Wait for queued CUDA work so warm-up does not leak into a timing (timed calls copy outputs to the host)."""
    device = getattr(backend, "device", None)
    if isinstance(device, torch.device) and device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(backend: Backend, images: list[np.ndarray]) -> None:
    """Untimed first calls after each change: allocators, kernel selection and caches settle outside the timings."""
    for image in images[:WARMUP]:
        backend(image)
    synchronize(backend)


def measure_setting(setting: Setting, cfg: PipelineConfig, backend: Backend, args: argparse.Namespace,
                    images: list[np.ndarray], dataset: Dataset, nms: NmsStage,
                    tmp: Path) -> tuple[Measurement, list[BenchmarkRecord]]:
    """R repeats of model-only and pipeline FPS on the clip, then accuracy; records carry kind tune and mAP@0.5."""
    warm_up(backend, images)
    records = [measure(cfg, args.clip, len(images), backend, variant, tmp, images)
               for _ in range(args.repeats) for variant in VARIANTS]
    report = evaluate_backend(backend, nms, dataset, progress=False)
    for record in records:
        record.kind, record.map50 = "tune", round(report.map50, 4)
    fps = {v: [r.fps for r in records if r.variant == v] for v in VARIANTS}
    point = Measurement(setting, fps["model-only"], fps["pipeline"], report.map50,
                        {c.name: c.ap50 for c in report.classes})
    log.info("%s", summary(point))
    return point, records


def sweep(args: argparse.Namespace, base: PipelineConfig, images: list[np.ndarray], dataset: Dataset,
          nms: NmsStage) -> list[Measurement]:
    """Measure every setting; each record goes to the shared benchmark log as soon as it has its mAP."""
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend_name in args.backends:
            for min_size in args.min_sizes:
                for setting, cfg, backend in configured_backends(base, backend_name, min_size, args.top_n,
                                                                 args.onnx_dir):
                    point, records = measure_setting(setting, cfg, backend, args, images, dataset, nms, Path(tmp))
                    for record in records:
                        write_record(record, None, args.benchmark_log)
                    points.append(point)
    return points


def write_csv(points: list[Measurement], path: Path) -> None:
    rows = [p.row() for p in points]
    header = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)


def write_json(args: argparse.Namespace, points: list[Measurement], front: list[Measurement],
               rec: Recommendation, path: Path) -> None:
    settings = {"config": args.config, "overrides": args.overrides, "clip": mask_url(args.clip), "data": args.data,
                "split": args.split, "target_fps": args.target_fps, "max_map_drop": args.max_map_drop,
                "top_n": args.top_n, "min_sizes": args.min_sizes, "backends": args.backends,
                "frames": args.frames, "repeats": args.repeats}
    measurements = [{**p.row(), "model_fps": p.model_fps, "pipeline_fps": p.pipeline_fps, "pareto": p in front}
                    for p in points]
    report = {"settings": settings, "measurements": measurements,
              "recommendation": {**rec.choice.row(), "rule": rec.rule}, "reason": rec.reason}
    path.write_text(json.dumps(report, indent=1))


def point_label(point: Measurement, backends: bool, sizes: bool) -> str:
    """``N=50``, plus the backend and min size when those were swept."""
    s = point.setting
    return " ".join([f"N={s.top_n}", *([s.backend] if backends else []), *([f"s{s.min_size}"] if sizes else [])])


def accuracy_label(data: str, split: str | None, classes: list[str]) -> str:
    """What the accuracy axis scores: the dataset, and the classes when ``nms.classes`` narrows them."""
    kept = "" if len(classes) == len(LABELS) - 1 else f" ({', '.join(classes)})"
    return f"mAP@0.5 on {dataset_name(data, split)}{kept}"


def plot(points: list[Measurement], front: list[Measurement], rec: Recommendation, target_fps: float | None,
         path: Path, title: str, ylabel: str) -> None:
    """Pipeline FPS (median, min-max bars) against mAP@0.5: Pareto front, target FPS and the choice marked."""
    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.add_subplot()
    backends = len({p.setting.backend for p in points}) > 1
    sizes = len({p.setting.min_size for p in points}) > 1
    for series in dict.fromkeys((p.setting.backend, p.setting.min_size) for p in points):
        group = [p for p in points if (p.setting.backend, p.setting.min_size) == series]
        xerr = [[p.fps - min(p.pipeline_fps) for p in group], [max(p.pipeline_fps) - p.fps for p in group]]
        name = " ".join([*([series[0]] if backends else []), *([f"min size {series[1]}"] if sizes else [])])
        ax.errorbar([p.fps for p in group], [p.map50 for p in group], xerr=xerr, fmt="o", capsize=3,
                    label=name or "settings")
    for p in points:
        ax.annotate(point_label(p, backends, sizes), (p.fps, p.map50), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    ax.plot([p.fps for p in front], [p.map50 for p in front], "k--o", lw=1, ms=13, mfc="none", mew=1.5,
            label="Pareto front", zorder=3)
    if target_fps is not None:
        ax.axvline(target_fps, color="tab:red", ls=":", label=f"target {target_fps:g} FPS")
    ax.scatter([rec.choice.fps], [rec.choice.map50], marker="*", s=320, color="gold", edgecolors="k", zorder=4,
               label=f"recommended ({rec.rule}): {point_label(rec.choice, backends, sizes)}")
    ax.set(xlabel="pipeline FPS (median; bars: min-max over repeats)", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(path)


def write_config(base: PipelineConfig, rec: Recommendation, onnx_dir: Path, args: argparse.Namespace,
                 path: Path) -> None:
    """The measured config with the chosen setting, under a comment header that says how it was chosen."""
    cfg = setting_config(base, rec.choice.setting, onnx_dir)
    header = [f"Tuned by python -m detector.tune on {time.strftime('%Y-%m-%d %H:%M')}",
              f"clip {mask_url(args.clip)} ({args.frames} frames x {args.repeats} repeats), data {args.data}"
              + (f" split {args.split}" if args.split else ""),
              f"rule {rec.rule}: {rec.reason}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"# {line}\n" for line in header) + yaml.safe_dump(to_dict(cfg), sort_keys=False))


def table(points: list[Measurement], front: list[Measurement], rec: Recommendation) -> str:
    """The console summary: one row per setting, ``*`` on the Pareto front, the recommended row marked."""
    lines = [f"{'backend':8} {'size':>5} {'top-N':>6} {'model FPS [min-max]':>22} {'pipeline FPS [min-max]':>24} "
             f"{'mAP@0.5':>8}  front"]
    for p in points:
        r = p.row()
        model = f"{r['model_fps_median']:.2f} [{r['model_fps_min']:.2f}-{r['model_fps_max']:.2f}]"
        pipe = f"{r['pipeline_fps_median']:.2f} [{r['pipeline_fps_min']:.2f}-{r['pipeline_fps_max']:.2f}]"
        mark = ("*" if p in front else "") + (" <- recommended" if p is rec.choice else "")
        lines.append(f"{p.setting.backend:8} {p.setting.min_size:5d} {p.setting.top_n:6d} {model:>22} {pipe:>24} "
                     f"{p.map50:8.4f}  {mark}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> tuple[list[Measurement], list[Measurement], Recommendation, Path]:
    """Check every input, sweep, and write the CSV, JSON, plot and (optionally) the tuned config."""
    base = load_pipeline_config(args.config, args.overrides)
    args.min_sizes = args.min_sizes or [base.model.min_size]
    args.backends = args.backends or [base.model.backend]
    args.benchmark_log = Path(args.benchmark_log or base.output.benchmark_csv)
    nms = NmsStage(evaluation_nms(base.nms, args.overrides))
    dataset = load_dataset(args.data, args.split)
    if not dataset.images:
        raise DatasetError(f"dataset '{args.data}' has no images")
    images = decode(args.clip, args.frames)
    out = args.out or Path(base.output.dir) / "tune" / source_name(args.clip)
    out.mkdir(parents=True, exist_ok=True)
    points = sweep(args, base, images, dataset, nms)
    front = pareto_front(points)
    rec = recommend(points, args.target_fps, args.max_map_drop)
    write_csv(points, out / "tune.csv")
    write_json(args, points, front, rec, out / "tune.json")
    plot(points, front, rec, args.target_fps, out / "tune.png", f"top-N tuning on {source_name(args.clip)}",
         accuracy_label(args.data, args.split, base.nms.classes))
    if args.write_config:
        write_config(base, rec, args.onnx_dir, args, args.write_config)
    return points, front, rec, out


def int_list(text: str) -> list[int]:
    """``"10,25,50"`` -> ``[10, 25, 50]`` (argparse type: a bad list is a one-line usage error)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return list(dict.fromkeys(values))


def name_list(text: str) -> list[str]:
    """``"torch,onnx"`` -> ``["torch", "onnx"]``, only known backends."""
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names or not set(names) <= set(BACKENDS):
        raise argparse.ArgumentTypeError(f"'{text}': backends are {', '.join(BACKENDS)}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="pipeline YAML (default: configs/default.yaml)")
    parser.add_argument("--clip", required=True, help="video file to measure FPS on")
    parser.add_argument("--data", required=True, metavar="FORMAT:PATH",
                        help="labelled set for mAP@0.5: voc|kitti|coco|yolo:PATH")
    parser.add_argument("--split", help="file of image stems to evaluate (one per line)")
    parser.add_argument("--target-fps", type=float, help="pipeline FPS the choice must reach (median)")
    parser.add_argument("--max-map-drop", type=float, default=1.0,
                        help="mAP@0.5 points (x100) the fallback may give up for speed (default 1)")
    parser.add_argument("--top-n", type=int_list, default=int_list(DEFAULT_TOP_N), help=f"default {DEFAULT_TOP_N}")
    parser.add_argument("--min-sizes", type=int_list, help="input min sizes to sweep (default: the config's)")
    parser.add_argument("--backends", type=name_list, help="torch and/or onnx (default: the config's backend)")
    parser.add_argument("--frames", type=int, default=100, help="clip frames per measurement (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (default 3)")
    parser.add_argument("--out", type=Path, help="output folder (default: <output.dir>/tune/<clip>)")
    parser.add_argument("--onnx-dir", type=Path, default=Path("outputs/onnx"), help="where ONNX exports are cached")
    parser.add_argument("--benchmark-log", help="shared CSV log (default: output.benchmark_csv)")
    parser.add_argument("--write-config", type=Path, metavar="OUT.yaml", help="write the tuned pipeline config")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.device=cpu")
    args = parser.parse_intermixed_args(argv)
    if args.frames < 1 or args.repeats < 1 or min(args.top_n) < 1 or min(args.min_sizes or [0]) < 0:
        parser.error("--frames, --repeats and --top-n values must be >= 1; --min-sizes values >= 0")
    if (args.target_fps is not None and args.target_fps <= 0) or args.max_map_drop < 0:
        parser.error("--target-fps must be > 0 and --max-map-drop >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """The command: 0 on success, 2 with one ``error:`` line for bad input (config, data, clip, weights, files)."""
    args = parse_args(argv)
    setup_logging()
    try:
        points, front, rec, out = run(args)
    except (ValueError, OSError, SourceError, StageFailed) as exc:
        return bad_input(exc)
    print(table(points, front, rec))
    print(f"recommended by rule {rec.rule}: {rec.reason}")
    written = f"; config: {args.write_config}" if args.write_config else ""
    print(f"results: {out}/tune.csv, tune.json, tune.png; log: {args.benchmark_log}{written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
