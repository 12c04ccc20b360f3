"""A wide-footage stand-in: COCO frames cropped to a 3.3:1 band (as 1242x375 dashcams record), boxes clipped.

We have no wide footage with labels, and the hidden day-traffic set is 3.3:1: int8 lost 4 points of car AP there
against 0.5 on our 16:9 val sets (issue 27). Cropping the GTSDB hold-out (1360x800) to its middle 1360x412 band
keeps the road and its cars and gives the model the wide input the policy makes of such frames (1092x329), so
int8's cost on wide footage can be measured here, on frames kept apart from calibration.

    python -m bench.wide_crops --data coco:../shared/data/gtsdb/train.json --split configs/splits/gtsdb-val.txt \\
        --out outputs/wide-gtsdb-val
    driving-detect evaluate --data coco:outputs/wide-gtsdb-val/wide.json [model.precision=int8|fp32]

The crops are derived from the shared data: they stay in ``outputs/`` (ignored by git), never in the repository.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from core.images import read_bgr
from detector.datasets import AnnotatedImage, load_dataset, write_coco

log = logging.getLogger(__name__)
ASPECT = 1242 / 375  # KITTI's frame: the widest dashcam format we are measured on
MIN_KEPT = 0.5  # a clipped box stays when at least this share of its area is inside the band


def crop_band(height: int, width: int, centre: float = 0.55) -> tuple[int, int]:
    """Rows (top, bottom) of the ``ASPECT`` band around ``centre`` (as a share of the height: the horizon sits a
    little below the middle of a dashcam frame)."""
    rows = min(height, round(width / ASPECT))
    top = int(np.clip(round(centre * height - rows / 2), 0, height - rows))
    return top, top + rows


def write_wide_set(spec: str, split: str | None, out: Path) -> Path:
    """Crop every image of ``spec`` (a dataset as the evaluate command reads it) into ``out``; returns the JSON."""
    dataset = load_dataset(spec, split)
    (out / "images").mkdir(parents=True, exist_ok=True)
    cropped = []
    for item in dataset.images:
        frame = read_bgr(item.path)
        top, bottom = crop_band(*frame.shape[:2])
        path = out / "images" / f"{item.path.stem}.jpg"
        cv2.imwrite(str(path), frame[top:bottom], [cv2.IMWRITE_JPEG_QUALITY, 95])
        boxes = item.boxes.copy()
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], top, bottom) - top
        rows = boxes[:, 3] - boxes[:, 1]
        kept = (rows > 0) & (rows >= MIN_KEPT * (item.boxes[:, 3] - item.boxes[:, 1]))
        cropped.append(AnnotatedImage(path, frame.shape[1], bottom - top, boxes[kept], item.labels[kept]))
    path = out / "wide.json"
    write_coco(path, cropped)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="coco:../shared/data/gtsdb/train.json")
    parser.add_argument("--split", default="configs/splits/gtsdb-val.txt")
    parser.add_argument("--out", type=Path, default=Path("outputs/wide-gtsdb-val"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = write_wide_set(args.data, args.split, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
