"""Tune the RPN top-N for speed: measure FPS and mAP@0.5 per setting in one run and recommend one.

Each setting (backend x input min size x top-N) is measured on the clip R times, model-only and through the
threaded pipeline (warm-up excluded), and evaluated on the labelled set with the same backend. The choice is the
most accurate setting whose median pipeline FPS meets --target-fps; when none does (or no target is given) it
is the fastest setting within --max-map-drop points (mAP@0.5 x 100) of the best mAP@0.5. Writes tune.csv,
tune.json and tune.png (FPS vs mAP@0.5 with the Pareto front) to --out, and appends every measurement to the
shared benchmark log as kind ``tune``. The command is ``driving-detect tune`` (`commands/tune.py`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure

from bench.benchmark import WARMUP, backend_config, decode, measure
from bench.choices import SWEEP_TOP_N
from core.config import to_dict
from core.labels import LABELS
from core.log import mask_url
from detector.backend import Backend, build_backend
from detector.datasets import Dataset, DatasetError, load_dataset
from detector.models import set_top_n
from detector.nms import ClasswiseNms
from detector.runtime import resolve_workers
from evaluation.evaluate import dataset_name, evaluate_backend, evaluation_nms
from stream.config import PipelineConfig
from stream.record import BenchmarkRecord, write_record, write_table
from stream.sources import source_name

log = logging.getLogger(__name__)
VARIANTS = ("model-only", "pipeline")


@dataclass
class TuneRequest:
    """What to sweep, on which clip and labelled set, and where the results go (the tune command's options).

    ``min_sizes`` and ``backends`` None: the config's own; ``benchmark_log`` None: the config's
    ``output.benchmark_csv``; ``out`` None: ``<output.dir>/tune/<clip>``.
    """

    clip: str
    data: str
    split: str | None = None
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    target_fps: float | None = None
    max_map_drop: float = 1.0
    top_n: list[int] = field(default_factory=lambda: list(SWEEP_TOP_N))
    min_sizes: list[int] | None = None
    backends: list[str] | None = None
    frames: int = 100
    repeats: int = 3
    out: Path | None = None
    onnx_dir: Path = Path("outputs/onnx")
    benchmark_log: Path | None = None
    write_config: Path | None = None


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
    device = backend.device
    if isinstance(device, torch.device) and device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(backend: Backend, images: list[np.ndarray]) -> None:
    """Untimed first calls after each change: allocators, kernel selection and caches settle outside the timings."""
    for image in images[:WARMUP]:
        backend(image)
    synchronize(backend)


def measure_setting(setting: Setting, cfg: PipelineConfig, backend: Backend, req: TuneRequest,
                    images: list[np.ndarray], dataset: Dataset, nms: ClasswiseNms,
                    tmp: Path) -> tuple[Measurement, list[BenchmarkRecord]]:
    """R repeats of model-only and pipeline FPS on the clip, then accuracy; records carry kind tune and mAP@0.5."""
    warm_up(backend, images)
    records = [measure(cfg, req.clip, len(images), backend, variant, tmp, images)
               for _ in range(req.repeats) for variant in VARIANTS]
    report = evaluate_backend(backend, nms, dataset, progress=False, workers=resolve_workers(cfg.model).workers)
    for record in records:
        record.kind, record.map50 = "tune", round(report.map50, 4)
    fps = {v: [r.fps for r in records if r.variant == v] for v in VARIANTS}
    point = Measurement(setting, fps["model-only"], fps["pipeline"], report.map50,
                        {c.name: c.ap50 for c in report.classes})
    log.info("%s", summary(point))
    return point, records


def sweep(req: TuneRequest, base: PipelineConfig, images: list[np.ndarray], dataset: Dataset,
          nms: ClasswiseNms) -> list[Measurement]:
    """Measure every setting; each record goes to the shared benchmark log as soon as it has its mAP."""
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend_name in req.backends:
            for min_size in req.min_sizes:
                for setting, cfg, backend in configured_backends(base, backend_name, min_size, req.top_n,
                                                                 req.onnx_dir):
                    point, records = measure_setting(setting, cfg, backend, req, images, dataset, nms, Path(tmp))
                    for record in records:
                        write_record(record, None, req.benchmark_log)
                    points.append(point)
    return points


def write_json(req: TuneRequest, points: list[Measurement], front: list[Measurement],
               rec: Recommendation, path: Path) -> None:
    settings = {"config": req.config, "overrides": req.overrides, "clip": mask_url(req.clip), "data": req.data,
                "split": req.split, "target_fps": req.target_fps, "max_map_drop": req.max_map_drop,
                "top_n": req.top_n, "min_sizes": req.min_sizes, "backends": req.backends,
                "frames": req.frames, "repeats": req.repeats}
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


def write_config(base: PipelineConfig, rec: Recommendation, onnx_dir: Path, req: TuneRequest,
                 path: Path) -> None:
    """The measured config with the chosen setting, under a comment header that says how it was chosen."""
    cfg = setting_config(base, rec.choice.setting, onnx_dir)
    header = [f"Tuned by driving-detect tune on {time.strftime('%Y-%m-%d %H:%M')}",
              f"clip {mask_url(req.clip)} ({req.frames} frames x {req.repeats} repeats), data {req.data}"
              + (f" split {req.split}" if req.split else ""),
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


def run(req: TuneRequest, base: PipelineConfig) -> tuple[list[Measurement], list[Measurement], Recommendation, Path]:
    """Check every input, sweep, and write the CSV, JSON, plot and (optionally) the tuned config. ``base``: the
    pipeline config ``req.config`` with ``req.overrides``, loaded (and so checked) by the caller first."""
    req.min_sizes = req.min_sizes or [base.model.min_size]
    req.backends = req.backends or [base.model.backend]
    req.benchmark_log = Path(req.benchmark_log or base.output.benchmark_csv)
    nms = ClasswiseNms(evaluation_nms(base.nms, req.overrides))
    dataset = load_dataset(req.data, req.split)
    if not dataset.images:
        raise DatasetError(f"dataset '{req.data}' has no images")
    images = decode(req.clip, req.frames)
    out = req.out or Path(base.output.dir) / "tune" / source_name(req.clip)
    out.mkdir(parents=True, exist_ok=True)
    points = sweep(req, base, images, dataset, nms)
    front = pareto_front(points)
    rec = recommend(points, req.target_fps, req.max_map_drop)
    write_table(out / "tune.csv", [p.row() for p in points])
    write_json(req, points, front, rec, out / "tune.json")
    plot(points, front, rec, req.target_fps, out / "tune.png", f"top-N tuning on {source_name(req.clip)}",
         accuracy_label(req.data, req.split, base.nms.classes))
    if req.write_config:
        write_config(base, rec, req.onnx_dir, req, req.write_config)
    return points, front, rec, out
