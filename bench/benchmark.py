"""Throughput benchmark: model-only vs the threaded pipeline vs a naive serial loop, per backend, in one run.

Each repeat measures every (model, backend, variant) on the same frames in turn, so drift on a shared machine hits all
of them alike; the table gives the median FPS with min and max, and each variant's ratio to model-only.
Every measurement is also written as a benchmark record (kind ``benchmark``) to the shared CSV log. The command
is ``driving-detect benchmark`` (`commands/benchmark.py`).
"""
from __future__ import annotations

import dataclasses
import logging
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from core.config import to_dict
from core.log import mask_url
from detector.backend import Backend, build_backend
from detector.nms import ClasswiseNms
from stream.config import PipelineConfig
from stream.pipeline import Outputs, Pipeline
from stream.record import BenchmarkRecord, write_record
from stream.render import Overlay
from stream.sources import SourceError, open_source
from stream.timing import latency_stats

log = logging.getLogger(__name__)
VARIANTS = ("model-only", "pipeline", "serial")
BACKENDS = ("torch", "onnx", "onnx-int8")  # onnx-int8: the ONNX export with its box head quantized
WARMUP = 3


def decode(source: str, frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(source)
    images = []
    while len(images) < frames and (ok_image := capture.read())[0]:
        images.append(ok_image[1])
    capture.release()
    if not images:
        raise SourceError(f"'{source}' gave no frames")
    return images


def model_only(backend: Backend, images: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """FPS of the backend alone on frames already in memory (no decode, NMS, drawing or writing)."""
    ms = []
    started = time.perf_counter()
    for image in images:
        t = time.perf_counter()
        backend(image)
        ms.append((time.perf_counter() - t) * 1000)
    return len(images) / (time.perf_counter() - started), np.asarray(ms)


def serial(cfg: PipelineConfig, source: str, backend: Backend, frames: int, out: Path) -> tuple[float, np.ndarray]:
    """The naive loop a pipeline must beat: read -> infer -> NMS -> draw -> write, one frame at a time."""
    nms, overlay = ClasswiseNms(cfg.nms), Overlay(cfg.render)
    capture = cv2.VideoCapture(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or cfg.source.fallback_fps
    writer, ms, count = None, [], 0
    started = time.perf_counter()
    while count < frames:
        t = time.perf_counter()
        ok, image = capture.read()
        if not ok:
            break
        annotated = overlay(image, nms(backend(image)), None)
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*cfg.output.codecs[0]), fps,
                                     (image.shape[1], image.shape[0]))
        writer.write(annotated)
        ms.append((time.perf_counter() - t) * 1000)
        count += 1
    seconds = time.perf_counter() - started
    capture.release()
    if writer is not None:
        writer.release()
    return count / seconds, np.asarray(ms)


def pipeline(cfg: PipelineConfig, source: str, backend: Backend, frames: int, out: Path) -> BenchmarkRecord:
    outputs = Outputs(out / "pipeline.mp4", out / "pipeline.jsonl")
    return Pipeline(cfg, open_source(source, cfg.source), source, backend, outputs, frames, progress=False).run()


def backend_config(cfg: PipelineConfig, backend: str, onnx_dir: Path) -> PipelineConfig:
    """``cfg`` switched to ``backend`` (one of BACKENDS); for ONNX the model is exported with the same settings,
    once per weights and precision (``onnx-int8``: box head quantized)."""
    if backend == "torch":
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backend="torch"))
    from detector import export as exporter
    from detector.weights import BUNDLED_WEIGHTS

    m = cfg.model
    path = onnx_dir / (f"{m.name}-{Path(m.weights).stem}-top{m.top_n}-size{m.min_size}x{m.max_size}"
                       f"-score{m.score_thresh:g}{backend.removeprefix('onnx')}.onnx")
    weights_file = BUNDLED_WEIGHTS if m.weights == "default" else Path(m.weights)
    sources = [f for f in (weights_file, Path(exporter.__file__)) if f.is_file()]  # newer weights or exporter
    stale = path.exists() and any(f.stat().st_mtime > path.stat().st_mtime for f in sources)
    if not path.exists() or stale:
        log.info("exporting %s to %s", m.name, path)
        precision = backend.partition("-")[2] or "fp32"
        exporter.export(m.name, m.weights, m.top_n, path, m.min_size, m.max_size, m.score_thresh, precision=precision)
    return dataclasses.replace(cfg, model=dataclasses.replace(m, backend="onnx", onnx_path=str(path)))


def measure(cfg: PipelineConfig, source: str, frames: int, backend: Backend, variant: str, tmp: Path,
            images: list[np.ndarray]) -> BenchmarkRecord:
    """One measurement as a benchmark record."""
    if variant == "pipeline":
        record = pipeline(cfg, source, backend, frames, tmp)
        record.kind, record.variant = "benchmark", "pipeline"
        return record
    fps, ms = model_only(backend, images) if variant == "model-only" else serial(cfg, source, backend, frames,
                                                                               tmp / "serial.mp4")
    m = cfg.model
    return BenchmarkRecord(
        kind="benchmark", source=mask_url(source), model=m.name, weights=m.weights, backend=backend.name,
        device=str(backend.device), top_n=m.top_n, frames=len(ms),
        seconds=round(len(ms) / fps, 3), fps=round(fps, 2), stages={variant: latency_stats(ms)},
        latency=latency_stats(ms), variant=variant, config=to_dict(cfg),
    )


def model_configs(base: PipelineConfig, models: list[str]) -> list[PipelineConfig]:
    """``NAME[:WEIGHTS]`` entries as configs; none given: the config's own model."""
    configs = []
    for spec in models or [f"{base.model.name}:{base.model.weights}"]:
        name, _, weights = spec.partition(":")
        model = dataclasses.replace(base.model, name=name, weights=weights or base.model.weights)
        configs.append(dataclasses.replace(base, model=model))
    return configs


Key = tuple[str, str, str]  # (model, backend, variant)


def compare(base: PipelineConfig, source: str, frames: int, repeats: int, backends: list[str], models: list[str],
            onnx_dir: Path, benchmark_log: Path) -> dict[Key, list[float]]:
    """FPS of every (model, backend, variant) on the first ``frames`` of ``source``, ``repeats`` times each."""
    images = decode(source, frames)
    results: dict[Key, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for model_cfg in model_configs(base, models):
            for name in backends:
                cfg = backend_config(model_cfg, name, onnx_dir)
                backend = build_backend(cfg.model)
                for image in images[:WARMUP]:
                    backend(image)
                runs.append((cfg, backend))
        for repeat in range(repeats):
            for cfg, backend in runs:
                for variant in VARIANTS:
                    record = measure(cfg, source, len(images), backend, variant, Path(tmp), images)
                    write_record(record, None, benchmark_log)
                    results.setdefault((cfg.model.name, backend.name, variant), []).append(record.fps)
                    log.info("repeat %d/%d %s %s %s: %.2f fps", repeat + 1, repeats, cfg.model.name,
                             backend.name, variant, record.fps)
    return results


def table(results: dict[Key, list[float]]) -> str:
    """Median FPS (min, max) per measurement and its ratio to the same model and backend alone."""
    width = max(len(k[0]) for k in results)
    lines = [f"{'model':{width}} {'backend':8} {'variant':11} {'FPS median':>10} {'min':>7} {'max':>7} "
             f"{'vs model-only':>14}"]
    for (model, backend, variant), fps in results.items():
        ratio = statistics.median(fps) / statistics.median(results[(model, backend, "model-only")])
        lines.append(f"{model:{width}} {backend:8} {variant:11} {statistics.median(fps):10.2f} {min(fps):7.2f} "
                     f"{max(fps):7.2f} {ratio:13.2f}x")
    return "\n".join(lines)
