"""Image files: which suffixes count as images (sources and datasets alike) and the one way to read one."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # in lookup order


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_bgr(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR, as cameras and video decoders give frames; None when missing or unreadable."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR)
