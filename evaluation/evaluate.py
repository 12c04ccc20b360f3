"""Evaluate a detector on a labelled dataset: per-class AP@0.5 (VOC all-point and 11-point) and COCO AP@[.5:.95].

Every image goes through the same backend and class-wise NMS as the pipeline, but with the NMS score thresholds
at 0 unless the user set them (see `evaluation_nms`). `evaluate_dataset` writes a JSON report and a PNG of the
precision-recall curves at IoU 0.5; the command is ``driving-detect evaluate`` (`commands/evaluate.py`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from evaluation.metrics import ClassResult, GroundTruth, evaluate

log = logging.getLogger(__name__)
COLUMNS = ("class", "GT", "dets", "AP50", "AP50-11pt", "AP[.5:.95]")


@dataclass
class EvalReport:
    """Per-class results (classes with ground truth only) and their means; ``seconds`` is the whole run."""

    classes: list[ClassResult]
    images: int
    seconds: float

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
        return {
            "classes": {
                c.name: {"num_gt": c.num_gt, "num_det": c.num_det, "ap50": round(c.ap50, 4),
                         "ap50_11pt": round(c.ap50_11pt, 4), "ap50_101pt": round(c.ap50_101pt, 4),
                         "ap_coco": round(c.ap50_95, 4)}
                for c in self.classes
            },
            "map50": round(self.map50, 4),
            "map50_11pt": round(self.map50_11pt, 4),
            "map_coco": round(self.map50_95, 4),
            "images": self.images,
            "seconds": round(self.seconds, 2),
        }


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def evaluate_backend(
    backend: Backend, nms_stage: ClasswiseNms, dataset: Dataset | Sequence[AnnotatedImage], progress: bool = True,
    workers: int = 1,
) -> EvalReport:
    """Run every image through ``backend`` then ``nms_stage`` and score the detections (used in-process by tuners).

    ``workers``: images in flight at once, as the pipeline's inference workers (a backend built for two one-thread
    streams runs a lone image on one core). Scores the classes that have ground truth and that the NMS stage
    keeps: with ``nms.classes=[car]`` the mAP is the car AP, not a mean diluted by classes filtered out on purpose.
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
    results = [r for r in evaluate(detections, truths, dict(enumerate(LABELS))) if nms_stage.keep[LABEL_IDS[r.name]]]
    return EvalReport(results, len(images), time.perf_counter() - started)


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
    """A fixed-width table: one row per class, then the mAP row."""
    row = "{:<16}{:>7}{:>8}{:>8}{:>11}{:>12}"
    lines = [row.format(*COLUMNS)]
    for c in report.classes:
        lines.append(row.format(c.name, c.num_gt, c.num_det, f"{c.ap50:.4f}", f"{c.ap50_11pt:.4f}", f"{c.ap50_95:.4f}"))
    lines.append(row.format(
        "mAP", sum(c.num_gt for c in report.classes), sum(c.num_det for c in report.classes),
        f"{report.map50:.4f}", f"{report.map50_11pt:.4f}", f"{report.map50_95:.4f}",
    ))
    return "\n".join(lines)


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


def evaluate_dataset(
    model: ModelConfig, nms: NmsConfig, data: str, split: str | None, report_path: Path, plots_dir: Path | None = None,
    skip_bad: bool = False,
) -> tuple[EvalReport, Path]:
    """Load the data and the model, evaluate, write the JSON report and ``pr_curves.png``; returns the plot path.

    ``nms`` is used as given: pass it through `evaluation_nms` to rank every candidate.
    """
    dataset = load_dataset(data, split, skip_bad=skip_bad)
    model = resolve_workers(model)
    backend = build_backend(model)
    log.info("evaluation NMS: IoU %.2f, score threshold %.2f", nms.iou, nms.score_thresh)
    report = evaluate_backend(backend, ClasswiseNms(nms), dataset, workers=model.workers)
    name = dataset_name(data, split)
    plot_path = (plots_dir or report_path.parent) / "pr_curves.png"
    record = {"dataset": {"spec": data, "split": split, "skipped": dataset.skipped},
              "config": {"model": to_dict(model), "nms": to_dict(nms)}, **report.to_json()}
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(record, indent=1))
    save_pr_curves(report, plot_path, name)
    return report, plot_path
