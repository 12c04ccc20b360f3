"""What every command shares: the argument parser and the one-line bad-input error.

Bad input (a usage error, a config, data, weights or source problem) is one ``error: ...`` line on stderr,
credentials in URLs masked, and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from core.log import mask_url

BAD_INPUT_EXIT = 2

# ``driving-detect`` subcommand -> what it does; each is the module ``commands.<name>`` with ``main(argv, prog)``.
SUBCOMMANDS: dict[str, str] = {
    "stream": "real-time detection on a video file, webcam, stream URL or image folder (annotated video, JSONL, record)",
    "evaluate": "AP@0.5 per class (VOC all-point and 11-point), COCO AP@[.5:.95], PR curves and a JSON report",
    "train": "train a Faster R-CNN end to end; checkpoints each epoch, evaluates on val, resumes",
    "export": "export a detector to ONNX with the project metadata (labels, top-N, sizes, weights hash)",
    "benchmark": "model-only vs threaded pipeline vs naive serial loop, per backend and model, in one run",
    "tune": "sweep the RPN top-N for pipeline FPS and mAP@0.5, plot the Pareto front, recommend and write a config",
    "interval": "sweep model.interval (detect every k-th frame, track between) for pipeline FPS and car AP@0.5",
    "batch": "many videos and image folders on Ray workers (local or a cluster): resumable, with a fleet summary",
    "plot": "draw any set of benchmark records: FPS, per-stage ms, latency, FPS vs mAP@0.5",
}


class CommandParser(argparse.ArgumentParser):
    """argparse whose errors read like every other bad input of the project (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT_EXIT, f"error: {message}\n")


def bad_input(exc: BaseException) -> int:
    """Print ``exc`` as the command's one ``error:`` line and return the exit code for bad input."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"error: {mask_url(message)}", file=sys.stderr)
    return BAD_INPUT_EXIT


def int_list(text: str) -> list[int]:
    """``"10,25,50"`` -> ``[10, 25, 50]`` (argparse type: a bad list is a one-line usage error)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return list(dict.fromkeys(values))
