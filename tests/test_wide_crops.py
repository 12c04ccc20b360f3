"""bench.wide_crops: the 3.3:1 stand-in for wide footage keeps the boxes of its band, clipped, and drops the rest."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from bench.wide_crops import ASPECT, crop_band, write_wide_set


def test_the_band_has_the_wide_aspect_and_stays_inside_the_frame() -> None:
    top, bottom = crop_band(800, 1360)
    assert abs(1360 / (bottom - top) - ASPECT) < 0.01
    assert 0 <= top < bottom <= 800
    assert crop_band(300, 1360) == (0, 300)  # already wider than 3.3:1: nothing to crop


def test_boxes_are_clipped_to_the_band_or_dropped(tmp_path: Path) -> None:
    frame = np.zeros((800, 1360, 3), np.uint8)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "f.jpg"), frame)
    top, bottom = crop_band(800, 1360)
    boxes = {"inside": [100, top + 50, 60, 40], "half_out": [300, top - 10, 50, 40], "outside": [500, 10, 40, 40]}
    annotations = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                   for i, b in enumerate(boxes.values())]
    (tmp_path / "train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "f.jpg", "width": 1360, "height": 800}], "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}]}))
    wide = json.loads(write_wide_set(f"coco:{tmp_path / 'train.json'}", None, tmp_path / "wide").read_text())
    assert wide["images"][0]["height"] == bottom - top
    assert cv2.imread(str(tmp_path / "wide" / "images" / "f.jpg")).shape == (bottom - top, 1360, 3)
    kept = sorted(tuple(round(v) for v in a["bbox"]) for a in wide["annotations"])
    assert kept == [(100, 50, 60, 40), (300, 0, 50, 30)]  # the half-out box clipped at the band's top; one dropped
