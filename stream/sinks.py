"""Sinks, as context managers so every exit path finalises them: annotated video, detections JSONL, a window."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from stream.frames import Frame

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """An output that can't be created or written."""


def prepare_output(path: Path) -> Path:
    """Create the parent folder and prove it is writable before any frame is processed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise SinkError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


class VideoSink:
    """Annotated video at the source's size and FPS; tries each FOURCC until one opens."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codecs: list[str]):
        self.path, self.fps, self.size, self.codecs = path, fps, size, codecs
        self.writer: cv2.VideoWriter | None = None
        self.codec = ""
        self.frames = 0

    def __enter__(self) -> VideoSink:
        prepare_output(self.path)
        for codec in self.codecs:
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps, self.size)
            if writer.isOpened():
                self.writer, self.codec = writer, codec
                log.info("video %s: codec %s, %dx%d at %.2f fps", self.path, codec, *self.size, self.fps)
                return self
            writer.release()
            log.warning("codec %s is not available for %s; trying the next", codec, self.path.suffix)
        raise SinkError(f"no video codec of {self.codecs} can write '{self.path}'")

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            raise SinkError(f"frame size {image.shape[1]}x{image.shape[0]} differs from the video's {self.size}")
        self.writer.write(image)
        self.frames += 1

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


class JsonlSink:
    """One JSON line per frame, flushed and fsync'd per frame so a crash loses at most the frame in flight."""

    def __init__(self, path: Path, sync: bool = False):
        self.path, self.sync = path, sync
        self.file = None
        self.lines = 0

    def __enter__(self) -> JsonlSink:
        prepare_output(self.path)
        self.file = self.path.open("w")
        return self

    def write(self, frame: Frame) -> None:
        record = {"frame": frame.index, "timestamp": round(frame.timestamp, 4), **frame.detections.to_json()}
        if frame.detections.track_ids is not None:
            record["source"] = frame.boxes_from
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.sync:
            os.fsync(self.file.fileno())
        self.lines += 1

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class DisplaySink:
    """An OpenCV window where a display exists; without one it warns once and does nothing."""

    def __init__(self, title: str):
        self.title = title
        self.enabled = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt")
        self.closed_by_user = False
        if not self.enabled:
            log.warning("--display: no display found (DISPLAY is unset); showing nothing")

    def __enter__(self) -> DisplaySink:
        return self

    def write(self, image: np.ndarray) -> None:
        if self.enabled:
            cv2.imshow(self.title, image)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                self.closed_by_user = True

    def __exit__(self, *exc) -> None:
        if self.enabled:
            cv2.destroyAllWindows()
