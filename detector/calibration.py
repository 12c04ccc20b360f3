"""Calibration frames for static int8 quantization: the activation ranges an int8 graph bakes in come from them.

Static post-training quantization runs the fp32 graph on real frames and records each tensor's range, so the
frames must look like the footage: the default set (`DEFAULT_CALIBRATION`) is the *training* splits of our
driving data (dashcam frames, GTSDB drives, sign photos), never the val splits accuracy is measured on. Each
source gives an equal share of the frames, spread evenly over it, so one large set does not set every range.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from core.images import read_bgr
from detector.datasets import DataSource, DatasetError, load_dataset

log = logging.getLogger(__name__)
DEFAULT_CALIBRATION_FRAMES = 128
DEFAULT_CALIBRATION = (
    DataSource("coco:../shared/data/pseudo/train.json"),
    DataSource("coco:../shared/data/gtsdb/train.json", "configs/splits/gtsdb-train.txt"),
    DataSource("voc:../shared/data/roadsigns", "../shared/data/roadsigns/train.txt"),
)


class CalibrationError(ValueError):
    """The calibration frames cannot be read; the message names what is missing."""


def calibration_missing(sources: list[DataSource]) -> str:
    """Why ``sources`` cannot calibrate (a missing path), or '' when they look usable; cheap, reads no file."""
    if not sources:
        return "model.calibration lists no dataset"
    for source in sources:
        path = Path(source.spec.partition(":")[2])
        if not path.exists():
            return f"calibration data '{path}' does not exist"
        if source.split and not Path(source.split).exists():
            return f"calibration split '{source.split}' does not exist"
    return ""


def calibration_paths(sources: list[DataSource], count: int) -> list[Path]:
    """``count`` image paths, an equal share from each source, evenly spaced through it."""
    missing = calibration_missing(sources)
    if missing:
        raise CalibrationError(missing)
    shares = [count // len(sources) + (i < count % len(sources)) for i in range(len(sources))]
    paths: list[Path] = []
    for source, share in zip(sources, shares):
        try:
            images = load_dataset(source.spec, source.split).images
        except DatasetError as exc:
            raise CalibrationError(f"calibration data: {exc}") from None
        if not images:
            raise CalibrationError(f"calibration data '{source.spec}' has no images")
        picks = np.linspace(0, len(images) - 1, min(share, len(images))).round().astype(int)
        paths += [images[i].path for i in dict.fromkeys(picks)]
    return paths


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the frames' names and sizes: a cache key that changes when the calibration set does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()


def read_frames(paths: list[Path]) -> list[np.ndarray]:
    """The frames as the camera gives them, (H, W, 3) uint8 BGR."""
    frames = []
    for path in paths:
        frame = read_bgr(path)
        if frame is None:
            raise CalibrationError(f"calibration image '{path}' cannot be read")
        frames.append(frame)
    log.info("calibrating int8 on %d frames", len(frames))
    return frames
