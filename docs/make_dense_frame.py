"""Draw docs/dense-labels.jpg: a synthetic 1080p street (the sample clip's renderer) with a row of parked cars on
each kerb, detected with the default config and drawn by the overlay at full size, to show the label placement.

    python docs/make_dense_frame.py [key=value ...]     # e.g. nms.score_thresh=0.1, as the committed picture

The shared driving clips may not be redistributed, so the picture is drawn by our own code.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.clips import sample_renderer  # noqa: E402
from detector.backend import build_backend  # noqa: E402
from detector.nms import PipelineNms  # noqa: E402
from stream.config import load_pipeline_config  # noqa: E402
from stream.render import Overlay  # noqa: E402

OUT = REPO / "docs" / "dense-labels.jpg"
COLORS = [(150, 148, 146), (40, 40, 160), (200, 200, 205), (60, 90, 40), (30, 30, 32), (160, 120, 60), (90, 90, 200)]


def main(overrides: list[str]) -> Path:
    sample = sample_renderer()
    right = [sample.Vehicle("car", 2.2 + 0.25 * (i % 2), 14.0 + 4.6 * i, 0.0, COLORS[i % 7]) for i in range(9)]
    left = [sample.Vehicle("car", -6.6 - 0.3 * (i % 2), 13.0 + 4.8 * i, 0.0, COLORS[(i + 3) % 7]) for i in range(7)]
    sample.VEHICLES = (*right, *left, sample.Vehicle("truck", -4.6, 26.0, 4.0, (206, 208, 210)))
    image = sample.render_frame(10, 1920, 1080)
    cfg = load_pipeline_config(None, overrides)
    detections = PipelineNms(cfg.nms)(build_backend(cfg.model)(image))
    cv2.imwrite(str(OUT), Overlay(cfg.render)(image, detections), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return OUT


if __name__ == "__main__":
    print(main(sys.argv[1:]))
