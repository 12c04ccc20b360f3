"""Stage timing: per-item durations kept over a bounded recent window, and their summary statistics."""
from __future__ import annotations

import threading
from collections import deque
from itertools import islice

import numpy as np


class StageTimer:
    """Per-item durations of one stage (thread-safe appends; reads take a snapshot).

    Keeps the most recent ``window`` items (default: 20 minutes at 30 FPS), so a camera left running for days
    holds a bounded amount of memory; statistics of longer runs are over that recent window.
    """

    WINDOW = 36_000

    def __init__(self, name: str, window: int = WINDOW):
        self.name = name
        self._ms: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0  # durations ever added, also those the window has let go

    def add(self, seconds: float) -> None:
        with self._lock:
            self._ms.append(seconds * 1000.0)
            self.count += 1

    def since(self, count: int) -> tuple[int, np.ndarray]:
        """The durations (ms) added after the first ``count``, oldest first, and the new count: a reader that
        passes back what it got consumes every duration once (a metrics histogram), within the window."""
        with self._lock:
            new = min(self.count - count, len(self._ms))
            return self.count, np.asarray(list(islice(reversed(self._ms), new))[::-1], np.float64)

    def snapshot(self) -> np.ndarray:
        with self._lock:
            return np.asarray(self._ms, np.float64)

    def recent_ms(self, n: int = 30) -> float:
        with self._lock:
            tail = list(islice(reversed(self._ms), n))
        return float(np.mean(tail)) if tail else 0.0


def latency_stats(ms: np.ndarray) -> dict[str, float]:
    """mean, p50 and p95 in milliseconds (zeros when empty)."""
    if len(ms) == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0}
    return {"mean": round(float(ms.mean()), 2), "p50": round(float(np.percentile(ms, 50)), 2),
            "p95": round(float(np.percentile(ms, 95)), 2)}
