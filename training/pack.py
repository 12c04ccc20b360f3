"""Pack a training config's data into one small folder, so a run can travel to a lent GPU machine.

A lent machine takes at most 64 MiB with the repository, and ``../shared/data`` is several times that. Each training
source is read as the trainer reads it (splits, teacher-score rules), its images shrunk to at most ``short_side``
pixels on the short side (the largest of ``train_min_sizes`` is enough: the model scales every image to one of
them anyway) and re-encoded as WebP, and written as one COCO JSON per source with the boxes scaled to match;
ignore regions become ``iscrowd`` boxes. The folder is a temporary copy for one run: keep it git-ignored, never
commit it (some footage may not be redistributed), and delete it afterwards.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import yaml

from core.config import to_dict
from core.images import read_bgr
from detector.datasets import AnnotatedImage, DataSource, DatasetError, load_dataset, write_coco
from training.config import TrainConfig

log = logging.getLogger(__name__)


def pack_source(images: list[AnnotatedImage], out: Path, short_side: int, quality: int) -> int:
    """Write ``out/images/*.webp`` (a third smaller than JPEG at the same quality) and ``out/train.json``; returns
    the bytes of the images."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    packed, written = [], 0
    for index, item in enumerate(images):
        bgr = read_bgr(item.path)
        if bgr is None:
            raise DatasetError(f"{item.path}: image missing or unreadable")
        height, width = bgr.shape[:2]
        scale = min(1.0, short_side / min(height, width))
        if scale < 1.0:
            width, height = round(width * scale), round(height * scale)
            bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        name = f"{index:05d}.webp"
        ok, data = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise DatasetError(f"{item.path}: cannot encode as WebP")
        (out / "images" / name).write_bytes(data.tobytes())
        written += len(data)
        packed.append(AnnotatedImage(out / "images" / name, width, height, item.boxes * scale, item.labels,
                                     item.ignore * scale))
    write_coco(out / "train.json", packed)
    return written


def pack(cfg: TrainConfig, out: Path, short_side: int, quality: int) -> dict:
    """Pack every training source of ``cfg`` under ``out``; returns the config as a dict with ``train`` pointing
    there (teacher-score rules already applied, so they are reset) and no ``val`` (evaluate where the data lives)."""
    train = []
    for n, source in enumerate(cfg.train):
        images = load_dataset(source.spec, source.split, min_teacher_score=cfg.min_teacher_score,
                              ignore_below_score=cfg.ignore_below_score).images
        folder = out / f"source{n}"
        size = pack_source(images, folder, short_side, quality)
        log.info("%s: %d images, %.1f MiB", source.spec, len(images), size / 2**20)
        train.append(DataSource(f"coco:{folder / 'train.json'}", None, source.repeat))
    return to_dict(cfg) | {"train": [{"spec": s.spec, "repeat": s.repeat} for s in train], "val": [],
                           "min_teacher_score": 0.0, "ignore_below_score": 0.0}


def write_packed(cfg: TrainConfig, out: Path, short_side: int, quality: int) -> Path:
    """`pack`, then ``out/train.yaml``, the config to train on the packed data; returns its path."""
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be in 1-100, got {quality}")
    if short_side < 1:
        raise ValueError(f"--short-side must be >= 1, got {short_side}")
    config = out / "train.yaml"
    data = pack(cfg, out, short_side, quality)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config
