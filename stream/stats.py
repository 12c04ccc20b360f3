"""`RunStats`: the one read-only view of a running pipeline that the HUD, the benchmark record, the web view's
dashboard and ``/metrics`` all read, so none of them reaches into the pipeline's runners, queues or sinks.

The pipeline writes through `frame_written` and `attach`; every reader uses the properties and methods, which
take snapshots (timers and queues are thread-safe to read) and change nothing.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from stream.queues import BoundedQueue
from stream.render import HudStats
from stream.sources import Source
from stream.stages import StageRunner
from stream.timing import StageTimer, latency_stats

if TYPE_CHECKING:
    from stream.record import BenchmarkRecord

RECENT_FRAMES = 30  # written frames the recent FPS is measured over


class RunStats:
    """Counters and timers of one pipeline run on one source, named ``source_id``."""

    def __init__(self, source_id: str, source: Source, expected_frames: int | None, tracked: bool,
                 record: Callable[[], BenchmarkRecord]):
        self.source_id, self.tracked = source_id, tracked
        self._record = record
        self._source = source
        self._expected = expected_frames
        self._runners: list[StageRunner] = []
        self._queues: dict[str, BoundedQueue] = {}
        self._lock = threading.Lock()
        self._written = 0
        self._times: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._latency = StageTimer("end-to-end")
        self._started = 0.0

    # -- written by the pipeline -------------------------------------------------------------------------------

    def attach(self, runners: list[StageRunner], queues: dict[str, BoundedQueue]) -> None:
        """The wired stages and queues of the run, once it starts."""
        self._runners, self._queues, self._started = list(runners), dict(queues), time.perf_counter()

    def frame_written(self, captured_at: float) -> float:
        """Count a frame every sink has written; returns now (perf_counter)."""
        now = time.perf_counter()
        self._latency.add(now - captured_at)
        with self._lock:
            self._times.append(now)
            self._written += 1
        return now

    # -- read by everyone else ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """The stages are wired and started."""
        return bool(self._runners)

    @property
    def written(self) -> int:
        return self._written

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in self._queues.values())

    @property
    def skipped(self) -> int:
        return self._source.skipped

    @property
    def reconnects(self) -> int:
        return self._source.reconnects

    @property
    def gap_seconds(self) -> float:
        return self._source.gap_seconds

    @property
    def expected_frames(self) -> int | None:
        """Frames a run to the end writes (None: unknown, e.g. a live source without --max-frames)."""
        return self._expected

    @property
    def last_written_at(self) -> float | None:
        """perf_counter of the newest written frame (None: none yet)."""
        with self._lock:
            return self._times[-1] if self._times else None

    @property
    def seconds(self) -> float:
        """From the start of the run to the newest written frame (to now before the first)."""
        if not self._started:
            return 0.0
        last = self.last_written_at
        return (last if last is not None else time.perf_counter()) - self._started

    @property
    def latency(self) -> StageTimer:
        """End-to-end (capture to written) durations; read with `StageTimer.since` or `snapshot`."""
        return self._latency

    def fps_recent(self) -> float:
        """Frames written per second over the last RECENT_FRAMES frames."""
        with self._lock:
            times = list(self._times)
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def stage_timers(self) -> dict[str, StageTimer]:
        """Each stage's timer by stage name, in pipeline order."""
        return {r.name: r.timer for r in self._runners}

    def stage_ms_recent(self) -> dict[str, float]:
        """Mean ms of each stage after capture over its recent items (what the HUD shows)."""
        return {r.name: r.timer.recent_ms() for r in self._runners[1:]}

    def stage_stats(self) -> dict[str, dict[str, float]]:
        return {r.name: latency_stats(r.timer.snapshot()) for r in self._runners}

    def queue_depths(self) -> dict[str, int]:
        return {n: q.depth() for n, q in self._queues.items()}

    def queue_stats(self) -> dict[str, dict[str, float]]:
        return {n: {"max_depth": q.max_depth, "mean_depth": round(q.mean_depth(), 2), "dropped": q.dropped}
                for n, q in self._queues.items()}

    def record(self) -> BenchmarkRecord:
        """The run's benchmark record as of now (what the web view's status shows live)."""
        return self._record()

    def hud(self) -> HudStats:
        return HudStats(self.fps_recent(), self.stage_ms_recent(), self.dropped)

