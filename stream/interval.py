"""Which frames the detector runs on: every k-th (``model.interval=k``), or for live sources as often as it keeps up.

The tracking stage fills the frames in between with motion-predicted boxes, so skipping the detector costs a
frame almost nothing. With ``model.interval=auto`` (the default) a live source raises k (up to
``model.max_interval``) when inference falls behind the camera, instead of dropping frames, and lowers it again
when inference catches up; a file keeps one k: `FILE_INTERVAL` where the skipped frames are filled well, else 1.
"""
from __future__ import annotations

import math
import threading

# ``model.interval=auto`` on a file: detect every FILE_INTERVAL-th frame where the skipped frames are filled from
# the detector frames on both sides (``track.fill=auto``, flow motion) or, filled from the frame before only, on
# frames of FILE_INTERVAL_MIN_PIXELS or more that get base-size passes (``model.full_size_every``); every frame
# otherwise. Car AP@0.5 on the held-out clip, every labelled frame a skipped one, k=2 against k=1: filled from both
# sides -0.9 at 640x360, +0.5 at 720p, +0.2 at 1080p; from the frame before only -3.9, -3.1 and -3.7 (over the 3
# the project allows), though at 1080p detecting every frame is not real time on a small CPU (docs/
# benchmarks.md "Filling skipped frames from both sides")
FILE_INTERVAL = 2
FILE_INTERVAL_MIN_PIXELS = 1_500_000  # between 720p (921,600) and 1080p (2,073,600)
AUTO_HEADROOM = 1.2  # aim for inference using at most 1 / 1.2 of the time the camera gives it
SMOOTHING = 0.2      # weight of the newest inference time in the running mean


class DetectorSchedule:
    """Decides, in frame order (the capture stage), whether frame ``index`` goes through the detector.

    interval: k, or ``auto`` (adaptive for live sources; files use 1, or `FILE_INTERVAL` when ``skip``: the
    pipeline fills skipped frames well enough, see the constants above); phase: the first detector frame; fps:
    the source's rate; workers: inference workers sharing the load.
    """

    def __init__(self, interval: int | str, max_interval: int, phase: int, fps: float, workers: int, live: bool,
                 skip: bool = False):
        self.adaptive = interval == "auto" and live
        self.k = (FILE_INTERVAL if skip else 1) if interval == "auto" else int(interval)
        self.max_interval, self.phase, self.fps, self.workers = max_interval, phase, fps, workers
        self.mean_seconds: float | None = None
        self.last_detected: int | None = None
        self.intervals_used: set[int] = {self.k}
        self._lock = threading.Lock()

    def detect(self, index: int) -> bool:
        if not self.adaptive:
            return index >= self.phase and (index - self.phase) % self.k == 0
        with self._lock:
            if self.mean_seconds is not None:
                needed = math.ceil(self.mean_seconds * self.fps * AUTO_HEADROOM / self.workers)
                self.k = min(max(needed, 1), self.max_interval)
                self.intervals_used.add(self.k)
            due = self.last_detected is None or index - self.last_detected >= self.k
            if due:
                self.last_detected = index
            return due

    def observe(self, seconds: float) -> None:
        """One detector call's duration (inference workers call this; only the adaptive schedule uses it)."""
        if not self.adaptive:
            return
        with self._lock:
            mean = self.mean_seconds
            self.mean_seconds = seconds if mean is None else (1 - SMOOTHING) * mean + SMOOTHING * seconds
