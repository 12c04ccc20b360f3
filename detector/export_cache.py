"""The exported graph, built on first use and cached: ONNX Runtime and OpenVINO both run it.

A file is keyed by everything baked into the graph (model, the weights file's sha256, top-N, input sizes, score
floor, graph precision, exporter version, and an int8 graph's calibration frames), so a second run reuses it and
any change builds a new one. A cached file that does not read back as this project's export (corrupt, truncated,
other settings) is rebuilt with one warning; files are written under a temporary name and renamed into place, so
a crash never leaves half a file.
``python -m detector.export`` remains the way to write an explicit file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from detector.backend_onnx import OnnxModelError, read_metadata
from detector.calibration import calibration_paths, fingerprint, read_frames
from detector.config import ModelConfig
from detector.export import EXPORTER_VERSION, export
from detector.weights import weights_file

log = logging.getLogger(__name__)
CACHE_ENV = "DRIVING_DETECT_CACHE"


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


def graph_key(cfg: ModelConfig, graph_precision: str, calibration: list[Path] = ()) -> dict[str, object]:
    """Everything the exported graph bakes in; the cache file's name is a hash of it. ``calibration``: an int8
    graph's calibration frames, whose names and sizes are part of the key."""
    path = weights_file(cfg.name, cfg.weights)
    key: dict[str, object] = {
        "model": cfg.name, "weights_sha256": file_sha256(path) if path is not None else "random-seed-0",
        "top_n": cfg.top_n, "min_size": cfg.min_size, "max_size": cfg.max_size, "score_thresh": cfg.score_thresh,
        "precision": graph_precision, "exporter": EXPORTER_VERSION}
    if graph_precision == "int8":
        key["calibration"] = fingerprint(list(calibration))
    return key


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

    An int8 graph is calibrated on ``cfg.calibration`` (a `CalibrationError` when it cannot be read).
    """
    frames = calibration_paths(cfg.calibration, cfg.calibration_frames) if graph_precision == "int8" else []
    key = graph_key(cfg, graph_precision, frames)
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
        export(cfg.name, cfg.weights, cfg.top_n, partial, cfg.min_size, cfg.max_size, cfg.score_thresh,
               precision=graph_precision, calibration=read_frames(frames) if frames else None)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s (top-N %d, %s) to %s in %.1f s; later runs reuse it", cfg.name, cfg.top_n,
             graph_precision, path, time.perf_counter() - started)
    return path
