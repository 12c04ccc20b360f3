"""The cost of median flow per frame (`tracking.flow.prepare` + `propagate`) at 640x360 and 1920x1080, with 5 and
20 boxes: the figures in `tracking.flow`'s docstring.

    python -m bench.flow_cost
"""
from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from tracking.flow import prepare, propagate

log = logging.getLogger(__name__)


def main() -> None:
    """Time `prepare` + `propagate` per frame at 640x360 and 1920x1080 (the figures in the module docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(0)
    for width, height in ((640, 360), (1920, 1080)):
        small = rng.integers(0, 256, (height // 8, width // 8, 3), np.uint8)
        frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        shifted = np.roll(frame, (height // 200, width // 200), axis=(0, 1))
        for count in (5, 20):
            x, y = rng.uniform(0, width * 0.8, count), rng.uniform(0, height * 0.8, count)
            boxes = np.stack([x, y, x + width * 0.1, y + height * 0.15], axis=1)
            prep, move = [], []
            for _ in range(50):
                t0 = time.perf_counter()
                previous, current = prepare(frame), prepare(shifted)
                t1 = time.perf_counter()
                propagate(previous, current, boxes)
                prep.append((t1 - t0) / 2)  # the tracker prepares one image a frame
                move.append(time.perf_counter() - t1)
            log.info("%dx%d, %d boxes: prepare %.2f ms, propagate %.2f ms (medians of 50)", width, height, count,
                     1000 * np.median(prep), 1000 * np.median(move))


if __name__ == "__main__":
    main()
