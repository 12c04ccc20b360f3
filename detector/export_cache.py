"""The exported graph, built on first use and cached: ONNX Runtime and OpenVINO both run it.

A file is keyed by everything baked into the graph (model, the weights file's sha256, top-N, input sizes, score
floor, graph precision, exporter version, and an int8 graph's calibration frames), so a second run reuses it and
any change builds a new one. Each bundled model ships the activation ranges its default calibration set gives
(`ranges_file`, ONNX Runtime's calibration cache with what it was measured for): its int8 graph then builds
without that data, in seconds, byte for byte the file the frames give. A cached file that does not read back as
this project's export (corrupt, truncated, other settings) is rebuilt with one warning; files are written under a
temporary name and renamed into place, so a crash never leaves half a file.
``driving-detect export`` remains the way to write an explicit file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from detector.graph import OnnxModelError, read_metadata
from detector.calibration import CalibrationError, calibration_missing, calibration_paths, fingerprint, read_frames
from detector.config import ModelConfig
from detector.export import EXPORTER_VERSION, Int8Ranges, export, fp32_nodes, measure_ranges
from detector.weights import WEIGHTS_DIR, weights_file

log = logging.getLogger(__name__)
CACHE_ENV = "DRIVING_DETECT_CACHE"


def ranges_file(name: str) -> Path:
    """Where the activation ranges of model ``name``'s bundled weights ship (`save_ranges` writes them)."""
    return WEIGHTS_DIR / f"{name}.int8-ranges.json"


class ExportCacheError(ValueError):
    """The cache folder cannot be created or written."""


def default_cache_dir() -> Path:
    """``$DRIVING_DETECT_CACHE``, else ``$XDG_CACHE_HOME/driving-detect``, else ``~/.cache/driving-detect``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driving-detect"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def graph_key(cfg: ModelConfig, graph_precision: str, calibration: str = "") -> dict[str, object]:
    """Everything the exported graph bakes in; the cache file's name is a hash of it. ``calibration``: an int8
    graph's calibration frames (`detector.calibration.fingerprint`: their names and sizes)."""
    path = weights_file(cfg.name, cfg.weights)
    key: dict[str, object] = {
        "model": cfg.name, "weights_sha256": file_sha256(path) if path is not None else "random-seed-0",
        "top_n": cfg.top_n, "min_size": cfg.min_size, "max_size": cfg.max_size, "score_thresh": cfg.score_thresh,
        "precision": graph_precision, "exporter": EXPORTER_VERSION}
    if graph_precision == "int8":  # the layers left fp32 change the int8 graph, not the fp32 one its ranges fit
        key.update(calibration=calibration, fp32_nodes=list(fp32_nodes(cfg.name)))
    return key


def saved_ranges(cfg: ModelConfig, path: Path | None = None) -> tuple[str, Int8Ranges] | None:
    """The ranges saved in ``path`` (None: those shipped for ``cfg``'s model, `ranges_file`) and their frames'
    fingerprint, when they were measured for exactly ``cfg``'s fp32 graph and calibration set; None when they don't
    apply (or can't be read, with a warning)."""
    path = path or ranges_file(cfg.name)
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        graph, calibration, ranges = saved["graph"], saved["calibration"], Int8Ranges(**saved["ranges"])
        sources, frames, model = saved["sources"], saved["frames"], graph["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the saved int8 ranges '%s': %s", path, exc)
        return None
    if sources != source_list(cfg) or frames != cfg.calibration_frames or model != cfg.name:
        return None
    try:
        if graph != graph_key(cfg, "fp32"):
            return None
    except OSError:  # weights not there (yet): whoever loads them says so
        return None
    return calibration, ranges


def source_list(cfg: ModelConfig) -> list[list[str | None]]:
    return [[source.spec, source.split] for source in cfg.calibration]


def save_ranges(cfg: ModelConfig, path: Path) -> Int8Ranges:
    """Calibrate ``cfg``'s fp32 graph on ``cfg.calibration``, save the ranges to ``path`` with what they were measured
    for (how `ranges_file` is made: ``driving-detect export --precision int8 --save-ranges PATH``), return them."""
    paths = calibration_paths(cfg.calibration, cfg.calibration_frames)
    ranges = measure_ranges(cfg.name, cfg.weights, cfg.top_n, cfg.min_size, cfg.max_size, cfg.score_thresh,
                            read_frames(paths))
    saved = {"graph": graph_key(cfg, "fp32"), "sources": source_list(cfg),
             "frames": cfg.calibration_frames, "calibration": fingerprint(paths), "ranges": dataclasses.asdict(ranges)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    return ranges


def int8_calibration(cfg: ModelConfig) -> tuple[str, Int8Ranges | list[Path]]:
    """What an int8 graph for ``cfg`` is calibrated with, and its fingerprint: the saved ranges when they apply,
    else ``cfg.calibration``'s frame paths (a `CalibrationError` when there are none)."""
    saved = saved_ranges(cfg)
    if saved is not None:
        return saved
    paths = calibration_paths(cfg.calibration, cfg.calibration_frames)
    return fingerprint(paths), paths


def calibration_input(calibration: Int8Ranges | list[Path]) -> list[np.ndarray] | Int8Ranges:
    """What `detector.export.export` takes for `int8_calibration`'s answer: the ranges, or the frames read."""
    return calibration if isinstance(calibration, Int8Ranges) else read_frames(calibration)


def int8_unavailable(cfg: ModelConfig) -> str:
    """Why no int8 graph can be built for ``cfg`` ('' when one can): neither saved ranges nor calibration frames."""
    return "" if saved_ranges(cfg) is not None else calibration_missing(cfg.calibration)


def cache_folder(cfg: ModelConfig) -> Path:
    """The configured cache folder, created and proven writable (an `ExportCacheError` otherwise)."""
    folder = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ExportCacheError(f"cannot write the export cache '{folder}': {exc.strerror or exc}; "
                               "set model.cache_dir to a writable folder") from None
    return folder


def cached_graph(cfg: ModelConfig, graph_precision: str = "fp32") -> Path:
    """The exported graph for ``cfg``: reused when a valid one is cached, else exported (the time is logged).

    An int8 graph is calibrated as `int8_calibration` says (a `CalibrationError` when it cannot be).
    """
    fingerprint_, calibration = int8_calibration(cfg) if graph_precision == "int8" else ("", [])
    key = graph_key(cfg, graph_precision, fingerprint_)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_folder(cfg) / f"{cfg.name}-top{cfg.top_n}-{graph_precision}-{digest}.onnx"
    if path.exists():
        try:
            meta = read_metadata(path)
            meta.check_config(cfg, str(path))
            if meta.precision != graph_precision:
                raise OnnxModelError(f"'{path}' holds a {meta.precision} graph, not {graph_precision}")
            return path
        except OnnxModelError as exc:
            log.warning("cached export is unusable (%s); rebuilding it", exc)
    started = time.perf_counter()
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        if isinstance(calibration, Int8Ranges):
            try:
                export_graph(cfg, partial, graph_precision, calibration)
                log.info("int8 calibrated with the activation ranges saved in '%s'", ranges_file(cfg.name).name)
            except CalibrationError as exc:
                if calibration_missing(cfg.calibration):
                    raise
                log.warning("%s: calibrating on the frames", exc)
                export_graph(cfg, partial, graph_precision,
                             calibration_input(calibration_paths(cfg.calibration, cfg.calibration_frames)))
        else:
            export_graph(cfg, partial, graph_precision, calibration_input(calibration) if calibration else None)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s (top-N %d, %s) to %s in %.1f s; later runs reuse it", cfg.name, cfg.top_n,
             graph_precision, path, time.perf_counter() - started)
    return path


def export_graph(cfg: ModelConfig, out: Path, graph_precision: str,
                 calibration: list[np.ndarray] | Int8Ranges | None) -> None:
    export(cfg.name, cfg.weights, cfg.top_n, out, cfg.min_size, cfg.max_size, cfg.score_thresh,
           precision=graph_precision, calibration=calibration)
