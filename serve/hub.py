"""The latest annotated frame of a run, and its JPEG, encoded only while someone watches.

The pipeline's web sink hands every written frame to `FrameHub.publish`, which keeps a reference to the newest
one and returns at once: a single slot that drops the older frame, so no viewer can slow the pipeline. One
encoder thread turns the newest frame into a JPEG at most ``fps`` times a second, and only while ``viewers`` > 0;
every viewer streams that same JPEG, so a second viewer costs no second encode.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np


class FrameHub:
    """Newest frame in, newest JPEG out; ``viewers`` is maintained by the MJPEG endpoint."""

    def __init__(self, fps: float, quality: int):
        self.interval, self.quality = 1.0 / fps, quality
        self.viewers = 0
        self.encoded = 0  # JPEGs made, for the benchmark and tests: none while nobody watches
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._encode_loop, name="web-jpeg", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def publish(self, image: np.ndarray) -> None:
        """Keep ``image`` (not copied: the pipeline never changes a frame it has written) as the newest frame."""
        with self._cond:
            self._image, self._seq = image, self._seq + 1
            if self.viewers:
                self._cond.notify_all()

    def jpeg(self) -> tuple[int, bytes]:
        """The newest JPEG and the number of the frame it shows (0: none yet)."""
        return self._jpeg

    def add_viewer(self) -> None:
        with self._cond:
            self.viewers += 1
            self._cond.notify_all()

    def remove_viewer(self) -> None:
        with self._cond:
            self.viewers -= 1

    def close(self) -> None:
        """Stop the encoder; the MJPEG streams see ``closed`` and end."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _encode_loop(self) -> None:
        next_at = 0.0
        while True:
            with self._cond:
                while not self.closed and (self.viewers == 0 or self._seq == self._jpeg[0]):
                    self._cond.wait()
            if self._closed.wait(max(0.0, next_at - time.monotonic())):
                return
            with self._cond:
                image, seq = self._image, self._seq
            next_at = time.monotonic() + self.interval
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                self._jpeg = (seq, data.tobytes())
                self.encoded += 1
