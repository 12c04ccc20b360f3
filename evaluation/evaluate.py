"""Evaluate a detector on a labelled dataset: per-class AP@0.5 (VOC all-point and 11-point) and COCO AP@[.5:.95].

Every image goes through the same backend and class-wise NMS as the pipeline, but with the NMS score thresholds
at 0 unless the user set them (see `evaluation_nms`). `evaluate_dataset` writes a JSON report with a bootstrap
interval per AP@0.5 (`evaluation.bootstrap`), a PNG of the precision-recall curves at IoU 0.5 and, against a
second configuration on the same images, the per-class AP differences with their intervals and a plot of them;
the command is ``driving-detect evaluate`` (`commands/evaluate.py`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from core.config import parse_overrides, to_dict
from core.detections import Detections
from core.images import read_bgr
from core.labels import LABEL_IDS, LABELS
from detector.backend import Backend, build_backend
from detector.config import ModelConfig, NmsConfig
from detector.datasets import AnnotatedImage, Dataset, DatasetError, load_dataset
from detector.nms import ClasswiseNms
from detector.runtime import resolve_workers
from evaluation.bootstrap import interval, resampled_aps
from evaluation.metrics import ClassResult, GroundTruth, evaluate

log = logging.getLogger(__name__)
COLUMNS = ("class", "GT", "dets", "AP50", "AP50-11pt", "AP[.5:.95]")


@dataclass
class EvalReport:
    """Per-class results (classes with ground truth only) and their means; ``seconds`` is the whole run;
    ``resampled``: each class's AP@0.5 on ``resamples`` bootstrap resamples of the images (`resampled_aps`; none
    when 0), which give its interval and, against another report on the same images, paired differences."""

    classes: list[ClassResult]
    images: int
    seconds: float
    resampled: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    resamples: int = 0

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """Each class's AP@0.5 95% bootstrap interval."""
        return {name: interval(values) for name, values in self.resampled.items()}

    @property
    def map50(self) -> float:
        return _mean([c.ap50 for c in self.classes])

    @property
    def map50_11pt(self) -> float:
        return _mean([c.ap50_11pt for c in self.classes])

    @property
    def map50_95(self) -> float:
        return _mean([c.ap50_95 for c in self.classes])

    def to_json(self) -> dict:
        intervals = self.intervals
        return {
            "classes": {
                c.name: {"num_gt": c.num_gt, "num_det": c.num_det, "ap50": round(c.ap50, 4),
                         "ap50_11pt": round(c.ap50_11pt, 4), "ap50_101pt": round(c.ap50_101pt, 4),
                         "ap_coco": round(c.ap50_95, 4),
                         **({"ap50_ci95": rounded(intervals[c.name])} if c.name in intervals else {})}
                for c in self.classes
            },
            "map50": round(self.map50, 4),
            "map50_11pt": round(self.map50_11pt, 4),
            "map_coco": round(self.map50_95, 4),
            "images": self.images,
            "seconds": round(self.seconds, 2),
            **({"resamples": self.resamples} if self.resamples else {}),
        }


@dataclass
class Versus:
    """The same images through a second configuration (``overrides`` on top of the first): its report, and per
    class the first's AP@0.5 minus the second's with the 95% interval of that difference (paired bootstrap)."""

    overrides: list[str]
    report: EvalReport
    differences: dict[str, tuple[float, float, float]]

    def to_json(self) -> dict:
        ours = self.report.to_json()
        return {"overrides": self.overrides, "map50": ours["map50"], "classes": {
            name: {**{k: ours["classes"][name][k] for k in ("num_gt", "num_det", "ap50", "ap50_ci95")
                      if k in ours["classes"][name]},
                   "diff": round(diff, 4), "diff_ci95": rounded((low, high))}
            for name, (diff, low, high) in self.differences.items()}}


def paired_differences(report: EvalReport, other: EvalReport) -> dict[str, tuple[float, float, float]]:
    """Per class both reports score: ``report``'s AP@0.5 minus ``other``'s, and the 95% interval of that difference
    over their paired resamples (both reports of the same images with the same ``resamples``; NaN without)."""
    theirs = {c.name: c.ap50 for c in other.classes}
    none = np.zeros(0)
    return {c.name: (c.ap50 - theirs[c.name],
                     *interval(report.resampled.get(c.name, none) - other.resampled.get(c.name, none)))
            for c in report.classes if c.name in theirs}


def rounded(pair: tuple[float, float]) -> list[float | None]:
    """A JSON-ready interval: 4 decimals, ``None`` where undefined."""
    return [None if np.isnan(v) else round(v, 4) for v in pair]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def evaluate_backend(
    backend: Backend, nms_stage: ClasswiseNms, dataset: Dataset | Sequence[AnnotatedImage], progress: bool = True,
    workers: int = 1, resamples: int = 0,
) -> EvalReport:
    """Run every image through ``backend`` then ``nms_stage`` and score the detections (used in-process by tuners).

    ``workers``: images in flight at once, as the pipeline's inference workers (a backend built for two one-thread
    streams runs a lone image on one core). Scores the classes that have ground truth and that the NMS stage
    keeps: with ``nms.classes=[car]`` the mAP is the car AP, not a mean diluted by classes filtered out on purpose.
    ``resamples``: bootstrap resamples for each AP@0.5's interval (0: none, as tuners need only the numbers).
    """
    images = dataset.images if isinstance(dataset, Dataset) else dataset
    started = time.perf_counter()

    def detect(item: AnnotatedImage) -> Detections:
        frame = read_bgr(item.path)
        if frame is None:
            raise DatasetError(f"{item.path}: image missing or unreadable")
        with backend.worker_threads():
            return nms_stage(backend(frame))

    with ThreadPoolExecutor(workers, thread_name_prefix="evaluate") as pool:
        detections = list(tqdm(pool.map(detect, images), total=len(images), desc="evaluate", unit="img",
                               file=sys.stderr, disable=not progress))
    truths = [GroundTruth(i.boxes, i.labels, i.ignore) for i in images]
    report = score(detections, truths, resamples, nms_stage.keep)
    return dataclasses.replace(report, seconds=time.perf_counter() - started)


def score(detections: Sequence[Detections], truths: Sequence[GroundTruth], resamples: int,
          keep: Sequence[bool] | None = None) -> EvalReport:
    """The report of ``detections`` against ``truths``, image by image: the classes with ground truth (and, when
    given, ``keep`` by label id), each with its AP@0.5 on ``resamples`` bootstrap resamples (0: none)."""
    results = [r for r in evaluate(detections, truths, dict(enumerate(LABELS)))
               if keep is None or keep[LABEL_IDS[r.name]]]
    resampled = resampled_aps(detections, truths, [LABEL_IDS[r.name] for r in results], resamples) if resamples else {}
    return EvalReport(results, len(truths), 0.0, {LABELS[c]: values for c, values in resampled.items()}, resamples)


def evaluation_nms(cfg: NmsConfig, overrides: list[str]) -> NmsConfig:
    """The config's NMS with score thresholds dropped unless given in ``overrides`` (the user's ``key=value``s).

    AP integrates precision over the whole ranked list, so a display threshold (0.4 in the default config) would
    cut recall short and lower every AP; evaluation ranks all detections the model emits instead (the model's
    own candidate floor ``model.score_thresh`` still applies: 0.01 by default, see `models.DEFAULT_SCORE_THRESH`).
    """
    given = parse_overrides(overrides)
    keep_thresh = "nms.score_thresh" in given
    keep_class = any(k == "nms.class_thresh" or k.startswith("nms.class_thresh.") for k in given)
    return dataclasses.replace(
        cfg,
        score_thresh=cfg.score_thresh if keep_thresh else 0.0,
        class_thresh=cfg.class_thresh if keep_class else {},
    )


def format_table(report: EvalReport) -> str:
    """A fixed-width table: one row per class (with its AP@0.5 interval when there is one), then the mAP row."""
    row = "{:<16}{:>7}{:>8}{:>8}{:>11}{:>12}{:>17}"
    intervals = report.intervals
    lines = [row.format(*COLUMNS, "AP50 95% CI" if intervals else "")]
    for c in report.classes:
        lines.append(row.format(c.name, c.num_gt, c.num_det, f"{c.ap50:.4f}", f"{c.ap50_11pt:.4f}", f"{c.ap50_95:.4f}",
                                format_interval(intervals.get(c.name))))
    lines.append(row.format(
        "mAP", sum(c.num_gt for c in report.classes), sum(c.num_det for c in report.classes),
        f"{report.map50:.4f}", f"{report.map50_11pt:.4f}", f"{report.map50_95:.4f}", "",
    ))
    return "\n".join(line.rstrip() for line in lines)


def format_interval(pair: tuple[float, float] | None, signed: bool = False) -> str:
    """``[0.8120, 0.9530]``; empty without an interval, ``n/a`` where no resample had the class."""
    if pair is None:
        return ""
    if any(np.isnan(v) for v in pair):
        return "n/a"
    return "[{}, {}]".format(*(f"{v:+.4f}" if signed else f"{v:.4f}" for v in pair))


def verdict(low: float, high: float) -> str:
    """What a difference's 95% interval says: ``worse`` or ``better`` when it excludes 0, else ``same?`` (no
    difference the images can show)."""
    return "worse" if high < 0 else "better" if low > 0 else "same?"


def format_versus(report: EvalReport, versus: Versus) -> str:
    """Per class: this run's AP@0.5, the versus run's, the difference and its 95% interval, and `verdict`."""
    row = "{:<16}{:>7}{:>8}{:>9}{:>9}{:>22}{:>8}"
    lines = [f"versus {' '.join(versus.overrides)}:",
             row.format("class", "GT", "AP50", "versus", "diff", "95% CI of diff", "")]
    ours = {c.name: c for c in report.classes}
    theirs = {c.name: c for c in versus.report.classes}
    for name, (diff, low, high) in versus.differences.items():
        lines.append(row.format(name, ours[name].num_gt, f"{ours[name].ap50:.4f}", f"{theirs[name].ap50:.4f}",
                                f"{diff:+.4f}", format_interval((low, high), signed=True),
                                "" if np.isnan(low) else verdict(low, high)))
    lines.append(row.format("mAP", "", f"{report.map50:.4f}", f"{versus.report.map50:.4f}",
                            f"{report.map50 - versus.report.map50:+.4f}", "", ""))
    return "\n".join(line.rstrip() for line in lines)


def save_pr_curves(report: EvalReport, path: Path, title: str = "") -> Path:
    """One PNG with a precision-recall curve per class at IoU 0.5 (Figure without pyplot: no GUI backend)."""
    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.add_subplot()
    for c in report.classes:
        ax.plot(c.curve50.recall, c.curve50.precision, label=f"{c.name} (AP50 {c.ap50:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"{title} mAP50 {report.map50:.3f}".strip())
    ax.grid(alpha=0.3)
    if report.classes:
        ax.legend(loc="lower left", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def dataset_name(spec: str, split: str | None) -> str:
    """A folder name for a dataset: ``voc:.../roadsigns`` + ``val.txt`` -> ``roadsigns-val``."""
    path = Path(spec.partition(":")[2])
    name = f"{path.parent.name}-{path.stem}" if path.suffix else path.name
    return f"{name}-{Path(split).stem}" if split else name


def save_versus_plot(versus: Versus, path: Path, title: str = "") -> Path:
    """Each class's AP@0.5 difference as a dot with its 95% interval as a bar, around zero (a forest plot)."""
    names = list(versus.differences)
    fig = Figure(figsize=(7, 1.5 + 0.35 * len(names)), dpi=100)
    ax = fig.add_subplot()
    for y, name in enumerate(names):
        diff, low, high = versus.differences[name]
        if not np.isnan(low):
            ax.plot([low, high], [y, y], color="tab:blue", linewidth=2)
        ax.plot([diff], [y], "o", color="tab:blue")
    ax.axvline(0, color="grey", linewidth=1)
    gt = {c.name: c.num_gt for c in versus.report.classes}
    ax.set_yticks(range(len(names)), [f"{name} ({gt[name]} GT)" for name in names])
    ax.invert_yaxis()
    ax.set_xlabel("AP@0.5 difference (this run minus versus), 95% bootstrap interval")
    ax.set_title(f"{title}\nversus {' '.join(versus.overrides)}".strip(), fontsize="small", wrap=True)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def evaluate_dataset(
    model: ModelConfig, nms: NmsConfig, data: str, split: str | None, report_path: Path, plots_dir: Path | None = None,
    skip_bad: bool = False, resamples: int = 0, versus: tuple[ModelConfig, NmsConfig, list[str]] | None = None,
) -> tuple[EvalReport, Path, Versus | None]:
    """Load the data and the model, evaluate, write the JSON report and ``pr_curves.png``; returns the report, the
    plot path and, with ``versus`` (a second model and NMS config, and the overrides that made them), the
    comparison on the same images, added to the report (``versus``) and drawn in ``versus.png``. The first
    model's report is written before the second model loads, so a second that fails loses nothing.

    ``nms`` is used as given: pass it through `evaluation_nms` to rank every candidate. ``resamples``: bootstrap
    resamples of the images for the 95% intervals (0: none, and no comparison intervals).
    """
    dataset = load_dataset(data, split, skip_bad=skip_bad)
    log.info("evaluation NMS: IoU %.2f, score threshold %.2f", nms.iou, nms.score_thresh)
    model = resolve_workers(model)
    report = evaluate_backend(build_backend(model), ClasswiseNms(nms), dataset, True, model.workers, resamples)
    name = dataset_name(data, split)
    plot_path = (plots_dir or report_path.parent) / "pr_curves.png"
    record = {"dataset": {"spec": data, "split": split, "skipped": dataset.skipped},
              "config": {"model": to_dict(model), "nms": to_dict(nms)}, **report.to_json()}
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(record, indent=1))
    save_pr_curves(report, plot_path, name)
    if versus is None:
        return report, plot_path, None
    other_model, other_nms, overrides = versus
    other_model = resolve_workers(other_model)
    log.info("versus %s", " ".join(overrides))
    other = evaluate_backend(build_backend(other_model), ClasswiseNms(other_nms), dataset, True, other_model.workers,
                             resamples)
    comparison = Versus(overrides, other, paired_differences(report, other))
    record["versus"] = {**comparison.to_json(), "config": {"model": to_dict(other_model), "nms": to_dict(other_nms)}}
    report_path.write_text(json.dumps(record, indent=1))
    save_versus_plot(comparison, plot_path.parent / "versus.png", name)
    return report, plot_path, comparison
