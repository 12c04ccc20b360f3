"""Throughput benchmark: model-only vs the threaded pipeline vs a naive serial loop, per backend, in one run; and
the pipeline with the model's detections replayed at no cost (``replay``), its ceiling.

Each repeat measures every (model, backend, variant) on the same frames in turn, so drift on a shared machine hits all
of them alike; the table gives the median FPS with min and max, the CPU ms a frame (all threads), and each
variant's ratio to model-only (taken per repeat: median and range). On a CPU-bound machine the pipeline's ratio is
about model-only's CPU ms over model-only's plus replay's, which the CPU columns show with far less noise (and a
line per backend prints, `ceilings`).
Every measurement is also written as a benchmark record (kind ``benchmark``) to the shared CSV log. The command
is ``driving-detect benchmark`` (`commands/benchmark.py`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from bench.clips import scaled_clip, size_pair
from core.config import to_dict
from core.detections import Detections
from core.log import mask_url
from detector.backend import Backend, build_backend
from detector.nms import PipelineNms
from detector.runtime import resolve_workers
from stream.config import PipelineConfig
from stream.pipeline import Pipeline
from stream.record import BenchmarkRecord, write_record
from stream.render import Overlay
from stream.run import default_outputs
from stream.sinks import VideoSink, video_size
from stream.sources import SourceError, open_source
from stream.timing import latency_stats

log = logging.getLogger(__name__)
# replay: the pipeline with the backend's detections handed back at no cost, i.e. the pipeline's own ceiling
VARIANTS = ("model-only", "pipeline", "serial", "replay")
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


class ReplayBackend:
    """The detections ``backend`` gave for the benchmark's frames, handed back in turn at no cost. A pipeline
    run on it measures everything but inference (decode, NMS, tracking, drawing, writing, hand-offs): its FPS is
    the pipeline's ceiling, and its CPU time a frame is what the pipeline takes from inference on a busy CPU,
    which varies far less from run to run on a shared machine than the FPS ratio does."""

    def __init__(self, backend: Backend, images: list[np.ndarray]):
        self.name, self.device, self.class_map = backend.name, backend.device, backend.class_map
        self.precision, self.runtime = getattr(backend, "precision", ""), getattr(backend, "runtime", None)
        self.detections = [backend(image) for image in images]
        self._calls = itertools.count()  # next() on it is atomic: safe from several inference workers

    def worker_threads(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __call__(self, frame_bgr: np.ndarray) -> Detections:
        return self.detections[next(self._calls) % len(self.detections)]


def cpu_seconds() -> float:
    """CPU time of this process, all threads (encoder and decoder threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def model_only(backend: Backend, images: list[np.ndarray], workers: int = 1) -> tuple[float, np.ndarray]:
    """FPS of the backend alone on frames already in memory (no decode, NMS, drawing or writing), with
    ``workers`` calls in flight as the pipeline's inference stage has: the backend's best throughput, which the
    pipeline is measured against."""

    def timed(image: np.ndarray) -> float:
        with backend.worker_threads():
            t = time.perf_counter()
            backend(image)
            return (time.perf_counter() - t) * 1000

    started = time.perf_counter()
    if workers == 1:
        ms = [timed(image) for image in images]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="model-only") as pool:
            ms = list(pool.map(timed, images))
    return len(images) / (time.perf_counter() - started), np.asarray(ms)


def serial(cfg: PipelineConfig, source: str, backend: Backend, frames: int, out: Path) -> tuple[float, np.ndarray]:
    """The naive loop a pipeline must beat: read -> infer -> NMS -> draw -> write (neither drawing nor video with
    ``output.video=false``), one frame at a time."""
    nms, overlay = PipelineNms(cfg.nms), Overlay(cfg.render)
    capture = cv2.VideoCapture(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or cfg.source.fallback_fps
    size = video_size((int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))),
                      cfg.output.max_size)
    ms, count = [], 0
    started = time.perf_counter()
    with VideoSink(out, fps, size, cfg.output) if cfg.output.video else contextlib.nullcontext() as writer:
        while count < frames:
            t = time.perf_counter()
            ok, image = capture.read()
            if not ok:
                break
            detections = nms(backend(image))
            if writer is not None:
                writer.write_image(overlay(image, detections, None, size))
            ms.append((time.perf_counter() - t) * 1000)
            count += 1
    seconds = time.perf_counter() - started
    capture.release()
    return count / seconds, np.asarray(ms)


def pipeline(cfg: PipelineConfig, source: str, backend: Backend, frames: int, out: Path) -> BenchmarkRecord:
    """The threaded pipeline as `run_stream.py` runs it; ``output.video=false`` writes no video, as ``--no-video``."""
    outputs = default_outputs(cfg, source, out / "pipeline.mp4", out / "pipeline.jsonl", out_dir=out, log_row=False)
    return Pipeline(cfg, open_source(source, cfg.source), source, backend, outputs, frames, progress=False).run()


def backend_config(cfg: PipelineConfig, backend: str, cache_dir: Path) -> PipelineConfig:
    """``cfg`` switched to ``backend`` (one of `bench.choices.BACKENDS`: ``name[-precision]``, fp32 when no
    precision is named, ``auto`` for the default choice); ONNX and OpenVINO run the graph exported once into
    ``cache_dir``."""
    name, _, precision = backend.partition("-")
    model = dataclasses.replace(cfg.model, backend=name, precision=precision or ("auto" if name == "auto" else "fp32"),
                                onnx_path="", cache_dir=str(cache_dir))
    return dataclasses.replace(cfg, model=model)


def measure(cfg: PipelineConfig, source: str, frames: int, backend: Backend, variant: str, tmp: Path,
            images: list[np.ndarray], replay: ReplayBackend | None = None) -> BenchmarkRecord:
    """One measurement as a benchmark record (``replay``: the backend's detections for the ``replay`` variant)."""
    if variant in ("pipeline", "replay"):
        record = pipeline(cfg, source, replay if variant == "replay" else backend, frames, tmp)
        record.kind, record.variant = "benchmark", variant
        return record
    if variant == "model-only":  # as many calls in flight as the pipeline's inference stage has workers
        fps, ms = model_only(backend, images, resolve_workers(cfg.model).workers)
    else:
        fps, ms = serial(cfg, source, backend, frames, tmp / "serial.mp4")
    m = cfg.model
    return BenchmarkRecord(
        kind="benchmark", source=mask_url(source), model=m.name, weights=m.weights, backend=backend.name,
        device=str(backend.device), top_n=m.top_n, frames=len(ms),
        seconds=round(len(ms) / fps, 3), fps=round(fps, 2), stages={variant: latency_stats(ms)},
        latency=latency_stats(ms), variant=variant, config=to_dict(cfg),
        source_size=f"{images[0].shape[1]}x{images[0].shape[0]}",
    )


def model_configs(base: PipelineConfig, models: list[str]) -> list[PipelineConfig]:
    """``NAME[:WEIGHTS]`` entries as configs; none given: the config's own model."""
    configs = []
    for spec in models or [f"{base.model.name}:{base.model.weights}"]:
        name, _, weights = spec.partition(":")
        model = dataclasses.replace(base.model, name=name, weights=weights or base.model.weights)
        configs.append(dataclasses.replace(base, model=model))
    return configs


Key = tuple[str, str, str, str]  # (source size, model, backend, variant)


def compare(base: PipelineConfig, source: str, frames: int, repeats: int, backends: list[str], models: list[str],
            onnx_dir: Path, benchmark_log: Path,
            sizes: list[str] | None = None) -> tuple[dict[Key, list[float]], dict[Key, list[float]]]:
    """FPS, and CPU ms a frame, of every (source size, model, backend, variant) on the first ``frames`` of
    ``source`` (scaled to each of ``sizes`` by `bench.clips.scaled_clip` when given), ``repeats`` times each; each
    repeat measures every size in turn, so drift hits them alike."""
    results: dict[Key, list[float]] = {}
    cpu: dict[Key, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = [str(scaled_clip(Path(source), size, frames, Path(tmp))) for size in sizes] if sizes else [source]
        footage = [(clip, decode(clip, frames)) for clip in clips]
        built = []
        for model_cfg in model_configs(base, models):
            for name in backends:
                cfg = backend_config(model_cfg, name, onnx_dir)
                backend = build_backend(cfg.model)
                for image in footage[0][1][:WARMUP]:
                    backend(image)
                built.append((cfg, backend))
        runs = [(clip, images, cfg, backend, ReplayBackend(backend, images))
                for clip, images in footage for cfg, backend in built]
        warned = False
        for repeat in range(repeats):
            for clip, images, cfg, backend, replay in runs:
                size = f"{images[0].shape[1]}x{images[0].shape[0]}"
                for variant in VARIANTS:
                    started = cpu_seconds()
                    record = measure(cfg, clip, len(images), backend, variant, Path(tmp), images, replay)
                    if variant == "pipeline" and record.detector_frames < record.frames and not warned:
                        warned = True
                        log.warning("the pipeline ran the detector on %d of %d frames (%s), model-only on every "
                                    "one: their ratio is not the pipeline's overhead; model.interval=1 measures "
                                    "that", record.detector_frames, record.frames, record.variant)
                    cpu_ms = (cpu_seconds() - started) / max(record.frames, 1) * 1000
                    write_record(record, None, benchmark_log)
                    key = (size, cfg.model.name, backend.name, variant)
                    results.setdefault(key, []).append(record.fps)
                    cpu.setdefault(key, []).append(cpu_ms)
                    log.info("repeat %d/%d %s %s %s %s: %.2f fps, %.1f ms of CPU a frame", repeat + 1, repeats,
                             size, cfg.model.name, backend.name, variant, record.fps, cpu_ms)
    return results, cpu


def table(results: dict[Key, list[float]], cpu: dict[Key, list[float]] | None = None) -> str:
    """Median FPS (min, max) per measurement, the median CPU ms a frame when ``cpu`` is given, and the ratio to the
    same model and backend alone: the median and range of each repeat's ratio, since a repeat measures both back
    to back and so shares the machine's drift."""
    width = max(len(k[1]) for k in results)
    cpu_head = f" {'CPU ms':>7}" if cpu else ""
    lines = [f"{'source':>9} {'model':{width}} {'backend':8} {'variant':11} {'FPS median':>10} {'min':>7} {'max':>7}"
             f"{cpu_head} {'ratio range':>11} {'vs model-only':>14}"]
    for key, fps in results.items():
        size, model, backend, variant = key
        ratios = [f / m for f, m in zip(fps, results[(size, model, backend, "model-only")])]
        cpu_cell = f" {statistics.median(cpu[key]):7.1f}" if cpu else ""
        lines.append(f"{size:>9} {model:{width}} {backend:8} {variant:11} {statistics.median(fps):10.2f} "
                     f"{min(fps):7.2f} "
                     f"{max(fps):7.2f}{cpu_cell} {min(ratios):5.2f}-{max(ratios):4.2f} "
                     f"{statistics.median(ratios):13.2f}x")
    return "\n".join(lines)


def ceilings(cpu: dict[Key, list[float]]) -> str:
    """Per model and backend, what the pipeline can reach when the CPU is its limit: inference's CPU a frame
    (model-only) over that plus everything else's (replay), so a miss reads as work or as waiting."""
    lines = []
    for size, model, backend, variant in cpu:
        if variant != "model-only" or (size, model, backend, "replay") not in cpu:
            continue
        infer, rest = (statistics.median(cpu[(size, model, backend, v)]) for v in ("model-only", "replay"))
        lines.append(f"{size} {model} {backend}: pipeline ceiling on a CPU-bound machine "
                     f"{infer / (infer + rest):.2f}x of "
                     f"model-only (inference {infer:.1f} ms of CPU a frame, everything else {rest:.1f})")
    return "\n".join(lines)


def flops_table(base: PipelineConfig, models: list[str], sizes: list[str]) -> str:
    """GFLOPs a frame per model part for every model and frame size (no weights needed: the count is the
    architecture's at the input size the model resizes each frame to)."""
    from core.labels import NUM_CLASSES
    from detector.flops import PARTS, frame_gflops
    from detector.models import build_detector, model_input_size

    rows = [f"{'model':<40} {'frame':>10} {'input':>10} " + " ".join(f"{p:>10}" for p in (*PARTS, "total"))]
    for cfg in model_configs(base, models):
        m = cfg.model
        model = build_detector(m.name, NUM_CLASSES, m.top_n, m.min_size, m.max_size, m.score_thresh)
        for size in sizes:
            width, height = size_pair(size)
            gflops = frame_gflops(model, width, height)
            seen = "x".join(map(str, model_input_size(m.name, m.min_size, m.max_size, width, height)))
            rows.append(f"{m.name:<40} {size:>10} {seen:>10} "
                        + " ".join(f"{gflops[p]:>10.2f}" for p in (*PARTS, "total")))
    return "GFLOPs a frame (torch FLOP counter; top-N " + str(base.model.top_n) + ")\n" + "\n".join(rows)
