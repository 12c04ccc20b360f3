"""Sweep ``model.interval`` (detect every k-th frame, track in between) for pipeline FPS and accuracy.

Each k runs the whole clip through the pipeline once (lossless, no video), with the detector phase chosen so
that as many labelled frames as possible are tracker frames (the hard case), then scores the JSONL's boxes on
the labelled frames: car AP@0.5 and mAP@0.5 at the pipeline's own score threshold (what a user sees, so lower
than the ranked AP of the evaluate command). The recommendation is the fastest k within ``max_ap_drop`` points
of k = 1's car AP. With ``sizes`` the clip is first scaled by ffmpeg to each ``WxH`` (`bench.clips.scaled_clip`)
and the sweep runs at each, the labels scaled with it (they are in the pixels of the labelled frames), so the
points, the k = 1 reference and the recommendation are per size. The command is ``driving-detect interval``
(`commands/interval.py`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.clips import scaled_clip, size_pair
from core.detections import Detections
from core.labels import LABEL_IDS, LABELS
from detector.backend import build_backend
from detector.datasets import AnnotatedImage, DatasetError, load_dataset
from evaluation.metrics import GroundTruth, evaluate
from stream.config import PipelineConfig
from stream.pipeline import Outputs, Pipeline
from stream.record import write_record, write_table
from stream.sources import open_source

log = logging.getLogger(__name__)
FRAME_NUMBER = re.compile(r"_(\d+)$")


@dataclass
class IntervalPoint:
    interval: int
    phase: int
    fps: float
    car_ap50: float
    map50: float
    detector_frames: int
    frames: int
    labelled_tracker_frames: int
    labelled_frames: int
    size: str | None = None  # WxH the clip was scaled to; None: the clip as it is (left out of the results)


def labelled_frames(images: list[AnnotatedImage]) -> dict[int, AnnotatedImage]:
    """Labelled images by decoded frame number (``clip_000123.jpg`` -> 123, as the pseudo sets name them)."""
    by_frame = {}
    for image in images:
        match = FRAME_NUMBER.search(image.path.stem)
        if match is None:
            raise DatasetError(f"{image.path}: no frame number in the file name (expected ..._NNNNNN)")
        by_frame[int(match.group(1))] = image
    return by_frame


def hardest_phase(interval: int, labelled: list[int]) -> int:
    """The detector phase that puts the fewest labelled frames on detector frames (ties: the smallest)."""
    return min(range(interval), key=lambda p: (sum((i - p) % interval == 0 for i in labelled), p))


def ground_truth(image: AnnotatedImage, size: str | None = None) -> GroundTruth:
    """The image's labels in the pixels of the clip they are scored on: scaled from the labelled frame's own size
    to ``size`` (``WxH``) when the clip was scaled, as they are otherwise."""
    if size is None:
        return GroundTruth(image.boxes, image.labels, image.ignore)
    width, height = size_pair(size)
    factor = np.array([width / image.width, height / image.height] * 2, np.float32)
    return GroundTruth(image.boxes * factor, image.labels, image.ignore * factor)


def score(lines: list[dict], truth: dict[int, AnnotatedImage], size: str | None = None) -> tuple[float, float]:
    """car AP@0.5 and mAP@0.5 of the JSONL boxes on the labelled frames, of a clip scaled to ``size`` if given."""
    frames = [line for line in lines if line["frame"] in truth]
    detections = [Detections(np.reshape(line["boxes"], (-1, 4)), line["scores"],
                             [LABEL_IDS[n] for n in line["labels"]]) for line in frames]
    truths = [ground_truth(truth[line["frame"]], size) for line in frames]
    results = evaluate(detections, truths, dict(enumerate(LABELS)))
    car = next((r.ap50 for r in results if r.name == "car"), 0.0)
    return car, float(np.mean([r.ap50 for r in results])) if results else 0.0


def sweep(base: PipelineConfig, clip: str, data: str, intervals: list[int], benchmark_log: Path | None,
          max_frames: int | None = None, sizes: list[str] | None = None) -> list[IntervalPoint]:
    """One pipeline run of the clip (its first ``max_frames`` when given), scaled to each of ``sizes`` when given,
    per interval; the backend is built once and shared. Each size's k are run back to back, as its k = 1 is
    what they are compared with."""
    truth = labelled_frames(load_dataset(data).images)
    backend = build_backend(base.model)
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        clips: dict[str | None, str] = {None: clip}
        if sizes:
            clips = {size: str(scaled_clip(Path(clip), size, max_frames, Path(tmp))) for size in sizes}
        for size, source in clips.items():
            for k in intervals:
                phase = 0 if k == 1 else hardest_phase(k, sorted(truth))
                cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, interval=k,
                                                                          interval_phase=phase))
                out = Outputs(None, Path(tmp) / f"{size or 'source'}-k{k}.jsonl")
                record = Pipeline(cfg, open_source(source, cfg.source), source, backend, out, max_frames,
                                  progress=False).run()
                record.variant = f"interval={k} phase={phase}"
                if benchmark_log is not None:
                    write_record(record, None, benchmark_log)
                lines = [json.loads(line) for line in out.detections.read_text().splitlines()]
                car, map50 = score(lines, truth, size)
                tracker_labelled = sum(1 for line in lines
                                       if line["frame"] in truth and line.get("source") == "tracker")
                point = IntervalPoint(k, phase, record.fps, car, map50, record.detector_frames, record.frames,
                                      tracker_labelled, sum(1 for line in lines if line["frame"] in truth), size)
                log.info("%sk=%d phase %d: %.2f FPS, car AP@0.5 %.4f, mAP@0.5 %.4f, %d of %d labelled frames "
                         "tracked", f"{size} " if size else "", k, phase, point.fps, car, map50, tracker_labelled,
                         point.labelled_frames)
                points.append(point)
    return points


def by_size(points: list[IntervalPoint]) -> dict[str | None, list[IntervalPoint]]:
    """The points of each source size, in the order they were run (one group, ``None``, without sizes)."""
    groups: dict[str | None, list[IntervalPoint]] = {}
    for p in points:
        groups.setdefault(p.size, []).append(p)
    return groups


def recommend(points: list[IntervalPoint], max_ap_drop: float) -> IntervalPoint:
    """The fastest interval whose car AP@0.5 is within ``max_ap_drop`` points of k = 1's (points of one size)."""
    reference = next(p for p in points if p.interval == 1)
    near = [p for p in points if p.car_ap50 >= reference.car_ap50 - max_ap_drop / 100 - 1e-9]
    return max(near, key=lambda p: (p.fps, -p.interval))


def recommend_each(points: list[IntervalPoint], max_ap_drop: float) -> dict[str | None, IntervalPoint]:
    """`recommend` at each source size: k = 1 at one size says nothing about another's accuracy or speed."""
    return {size: recommend(group, max_ap_drop) for size, group in by_size(points).items()}


def recommendation(choices: dict[str | None, IntervalPoint], max_ap_drop: float) -> str:
    """The recommendation as one line: the k, or the k at each size."""
    if list(choices) == [None]:
        return (f"recommended: model.interval={choices[None].interval} (fastest within {max_ap_drop:g} points of "
                f"k=1's car AP@0.5)")
    picks = ", ".join(f"{c.interval} at {size}" for size, c in choices.items())
    return f"recommended: model.interval={picks} (fastest within {max_ap_drop:g} points of k=1's car AP@0.5 there)"


def plot(points: list[IntervalPoint], choices: dict[str | None, IntervalPoint], path: Path, title: str) -> None:
    """Pipeline FPS against car AP@0.5, one point per k and one curve per source size, the recommendations
    starred."""
    fig = Figure(figsize=(7.5, 5), dpi=110)
    ax = fig.add_subplot()
    for size, group in by_size(points).items():
        prefix = f"{size} " if size else ""
        car, = ax.plot([p.fps for p in group], [p.car_ap50 for p in group], "o-", label=f"{prefix}car AP@0.5")
        ax.plot([p.fps for p in group], [p.map50 for p in group], "s--", alpha=0.6,
                color=car.get_color() if size else None, label=f"{prefix}mAP@0.5 (all classes)")
        for p in group:
            ax.annotate(f"k={p.interval}", (p.fps, p.car_ap50), textcoords="offset points", xytext=(6, 6),
                        fontsize=9)
        choice = choices[size]
        ax.scatter([choice.fps], [choice.car_ap50], marker="*", s=320, color="gold", edgecolors="k", zorder=4,
                   label=f"{prefix}recommended: k={choice.interval}")
    ax.set(xlabel="pipeline FPS (whole clip)", ylabel="AP@0.5 on the labelled frames (pipeline threshold)",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def write_results(points: list[IntervalPoint], choices: dict[str | None, IntervalPoint], out: Path,
                  settings: dict) -> None:
    """interval.json and interval.csv; a sized sweep adds a ``size`` field to each point and
    ``recommended_by_size``, so files of a sweep without sizes read as they always have."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [{key: value for key, value in dataclasses.asdict(p).items() if key != "size" or p.size} for p in points]
    if list(choices) == [None]:
        picked = {"recommended": choices[None].interval}
    else:
        picked = {"recommended_by_size": {size: c.interval for size, c in choices.items()}}
    (out / "interval.json").write_text(json.dumps({"settings": settings, "points": rows, **picked}, indent=1))
    write_table(out / "interval.csv", rows)


def table(points: list[IntervalPoint], choices: dict[str | None, IntervalPoint]) -> str:
    """One row per k (per source size and k with sizes), its FPS against k = 1's at the same size."""
    size_head = f"{'size':>9} " if list(choices) != [None] else ""
    lines = [f"{size_head}{'k':>3} {'phase':>5} {'FPS':>7} {'vs k=1':>7} {'car AP50':>9} {'mAP50':>7} "
             f"{'det frames':>11} {'tracked labelled':>17}"]
    for size, group in by_size(points).items():
        size_cell = f"{size:>9} " if size else ""
        base = next(p for p in group if p.interval == 1).fps
        for p in group:
            mark = "  <- recommended" if p is choices[size] else ""
            lines.append(f"{size_cell}{p.interval:3d} {p.phase:5d} {p.fps:7.2f} {p.fps / base:6.2f}x "
                         f"{p.car_ap50:9.4f} {p.map50:7.4f} {p.detector_frames:5d}/{p.frames:<5d} "
                         f"{p.labelled_tracker_frames:8d}/{p.labelled_frames:<8d}{mark}")
    return "\n".join(lines)
