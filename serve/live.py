"""What the web view knows of one running pipeline: per-class counts (boxes written, objects seen, objects in view),
latency histograms, a short history for the charts, progress, the process's CPU and memory, and the status (the
benchmark record's fields, live).

The pipeline is read, never changed: `WebSink` is the last of the pipeline's sinks (it sees exactly the written
frames and does work bounded by a frame's boxes: count, hand the frame to the hub), and a 1 s ticker reads the
pipeline's `stream.stats.RunStats`, the counters and timers it keeps anyway. The status, which computes the record's
percentiles, is built only when asked and at most once a tick, so a run nobody watches pays nothing for it.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict
from typing import Any

import numpy as np
from joblib import cpu_count
from prometheus_client import ProcessCollector

from core.labels import LABELS, NUM_CLASSES
from serve.hub import FrameHub
from stream.config import ServeConfig
from stream.frames import Frame
from stream.sinks import SinkBase
from stream.stats import RunStats
from stream.timing import StageTimer

TICK = 1.0            # seconds between history points (and status refreshes)
RATE_WINDOW = 5.0     # seconds the recent FPS is measured over
SOURCE_STALE = 5.0    # seconds without a written frame after which the source counts as down
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds


class Histogram:
    """Cumulative latency buckets of one `StageTimer`, fed each duration once (Prometheus semantics: le)."""

    def __init__(self) -> None:
        self.counts = np.zeros(len(BUCKETS) + 1, np.int64)  # the last one is +Inf
        self.sum = 0.0
        self.seen = 0

    def absorb(self, timer: StageTimer) -> None:
        """Take the durations added since the last call."""
        self.seen, ms = timer.since(self.seen)
        seconds = ms / 1000.0
        self.counts += np.bincount(np.searchsorted(BUCKETS, seconds, side="left"), minlength=len(BUCKETS) + 1)
        self.sum += float(seconds.sum())

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def buckets(self) -> list[tuple[str, int]]:
        cumulative = np.cumsum(self.counts)
        return [(str(le), int(n)) for le, n in zip(BUCKETS, cumulative)] + [("+Inf", int(cumulative[-1]))]


class ProcessUsage:
    """This process's CPU and memory, read by prometheus-client's process collector (what ``/metrics`` exports as
    ``process_cpu_seconds_total`` and ``process_resident_memory_bytes``), so the page and a scrape agree. CPU is
    a percentage of one CPU between two samples, as top shows it (``cpus`` x 100 % is every CPU this process may
    use). None where the collector has no ``/proc`` to read (not Linux)."""

    def __init__(self) -> None:
        self.collector = ProcessCollector(registry=None)
        self.cpus = cpu_count()  # logical CPUs, CPU affinity and a container's quota counted
        self.cpu_percent: float | None = None
        self.memory_bytes: int | None = None
        self._last: tuple[float, float] | None = None  # (perf_counter, CPU seconds) of the previous sample

    def sample(self, now: float) -> None:
        """Read the collector at ``now`` (perf_counter): CPU over the time since the previous sample, RSS now."""
        values = {s.name: s.value for metric in self.collector.collect() for s in metric.samples}
        cpu, rss = values.get("process_cpu_seconds_total"), values.get("process_resident_memory_bytes")
        if cpu is not None and self._last is not None and now > self._last[0]:
            self.cpu_percent = round((cpu - self._last[1]) / (now - self._last[0]) * 100, 1)
        self._last = None if cpu is None else (now, cpu)
        self.memory_bytes = None if rss is None else int(rss)


def by_class(counts: np.ndarray) -> dict[str, int]:
    """Per-class counts by class name (background left out)."""
    return {LABELS[i]: int(n) for i, n in enumerate(counts) if i > 0}


class LiveRun:
    """Live numbers of one source's run (``stats``) for the dashboard, ``/api/status`` and ``/metrics``."""

    def __init__(self, stats: RunStats, cfg: ServeConfig, hub: FrameHub):
        self.stats, self.cfg, self.hub = stats, cfg, hub
        self.source_id = stats.source_id
        self.detections = np.zeros(NUM_CLASSES, np.int64)  # boxes in all written frames (a box per frame)
        self.in_view = np.zeros(NUM_CLASSES, np.int64)  # objects in the newest written frame (see on_frame)
        self.tracked = stats.tracked
        self.objects_seen = np.zeros(NUM_CLASSES, np.int64)  # confirmed tracks, each once, by its class when first seen
        self._tracks: set[int] = set()
        self.stage_latency: dict[str, Histogram] = {}
        self.end_to_end = Histogram()
        self.history: deque[tuple[float, float, float | None]] = deque(maxlen=max(1, int(cfg.history / TICK)))
        self.ticks = 0
        self.state = "starting"
        self.fps_recent = 0.0
        self.elapsed = 0.0  # seconds since the web view started, at the last tick
        self._rates: deque[tuple[float, int]] = deque()
        self._last_end_to_end = (0.0, 0)  # (sum, count) at the last tick
        self.process = ProcessUsage()
        self._lock = threading.Lock()
        self._status: tuple[int, dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick_loop, name="web-ticker", daemon=True)
        self.started = time.perf_counter()
        self.process.sample(self.started)  # so the first tick has a CPU figure

    def on_frame(self, frame: Frame) -> None:
        """The web sink: count the frame's boxes and objects by class and the confirmed tracks not seen before,
        offer the frame to the hub. With tracking, an object is a confirmed track (a box without one, ``-1``, may
        be a one-frame false positive); without, every box. Counted here, from what was written, rather than read
        from the tracker, whose state belongs to the track stage's thread."""
        detections = frame.detections
        in_view = np.zeros(NUM_CLASSES, np.int64)
        if detections is not None and len(detections):
            self.detections += np.bincount(detections.labels, minlength=NUM_CLASSES)[:NUM_CLASSES]
            labels = detections.labels
            if detections.track_ids is not None:
                confirmed = detections.track_ids >= 0
                labels = labels[confirmed]
                for track, label in zip(detections.track_ids[confirmed].tolist(), labels.tolist()):
                    if track not in self._tracks:
                        self._tracks.add(track)
                        self.objects_seen[label] += 1
            in_view = np.bincount(labels, minlength=NUM_CLASSES)[:NUM_CLASSES]
        self.in_view = in_view
        self.hub.publish(frame.annotated if frame.annotated is not None else frame.image)

    def start(self) -> None:
        self._thread.start()

    def finish(self, state: str) -> None:
        """Stop ticking after one last tick, so the final numbers stay fixed while they are served."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.tick()
        with self._lock:
            self.state = state
            self._status = None

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK):
            self.tick()

    def absorb(self) -> None:
        """Feed the histograms every duration the pipeline's timers took since the last call (each tick and each
        scrape, so slow scrapes lose nothing to the timers' bounded windows)."""
        with self._lock:
            for name, timer in self.stats.stage_timers().items():
                self.stage_latency.setdefault(name, Histogram()).absorb(timer)
            self.end_to_end.absorb(self.stats.latency)

    def tick(self) -> None:
        """Absorb new durations, measure the recent FPS and the process's CPU and memory, add a history point (FPS,
        mean latency of the tick)."""
        self.absorb()
        stats = self.stats
        with self._lock:
            total = (self.end_to_end.sum, self.end_to_end.count)
            (sum_before, count_before), self._last_end_to_end = self._last_end_to_end, total
            latency = round((total[0] - sum_before) / (total[1] - count_before) * 1000, 1) \
                if total[1] > count_before else None
            now, written = time.perf_counter(), stats.written
            self._rates.append((now, written))
            while now - self._rates[0][0] > RATE_WINDOW + TICK / 2:
                self._rates.popleft()
            then, before = self._rates[0]
            self.fps_recent = round((written - before) / (now - then), 2) if now > then else 0.0
            self.process.sample(now)
            self.elapsed = round(now - self.started, 1)
            self.history.append((self.elapsed, self.fps_recent, latency))
            if self.state == "starting" and stats.running:
                self.state = "running"
            self.ticks += 1

    @property
    def source_up(self) -> bool:
        """Frames are arriving: the run is on and a frame was written within the last SOURCE_STALE seconds."""
        last = self.stats.last_written_at
        return self.state == "running" and last is not None and time.perf_counter() - last < SOURCE_STALE

    @property
    def reconnects(self) -> int:
        return self.stats.reconnects

    def progress(self, written: int) -> dict[str, Any]:
        """``written`` frames of the frames the run will write (the file's count, or --max-frames; None for a live
        source without either), and the time left at the recent FPS while it runs; the run's elapsed seconds."""
        total = self.stats.expected_frames
        eta = None
        if total is not None and self.state == "running" and self.fps_recent > 0:
            eta = round(max(total - written, 0) / self.fps_recent, 1)
        return {"frames": written, "total": total, "percent": round(100 * written / total, 1) if total else None,
                "eta_seconds": eta, "elapsed_seconds": self.elapsed}

    def status(self) -> dict[str, Any]:
        """The benchmark record's fields, live, plus what only a live run has: built once a tick, but the viewer
        count is read on every request (a count sampled before the page's own stream connected, or when the run
        ended, would show "viewers 0" on the page that is playing the stream)."""
        with self._lock:
            if self._status is None or self._status[0] != self.ticks:
                self._status = (self.ticks, self._build_status())
            return self._status[1] | {"viewers": self.hub.viewers}

    def _build_status(self) -> dict[str, Any]:
        """The per-tick part of `status` (the record's percentiles are computed here); call with the lock held."""
        stats = self.stats
        hud = stats.hud()
        t, fps, latency = zip(*self.history) if self.history else ((), (), ())
        record = stats.record()
        return asdict(record) | {
            "name": self.source_id, "state": self.state, "tick": self.ticks, "fps_recent": self.fps_recent,
            "source_up": self.source_up, "reconnects": self.reconnects,
            "stage_ms_recent": {k: round(v, 2) for k, v in hud.stage_ms.items()},
            "queue_depth": stats.queue_depths(),
            "detections_by_class": by_class(self.detections), "progress": self.progress(record.frames),
            "objects_seen": by_class(self.objects_seen) if self.tracked else None,
            "objects_in_view": by_class(self.in_view),
            "max_viewers": self.cfg.max_clients, "cpu_percent": self.process.cpu_percent,
            "cpus": self.process.cpus, "memory_bytes": self.process.memory_bytes,
            "history": {"t": list(t), "fps": list(fps), "latency_ms": list(latency)},
        }


class WebSink(SinkBase):
    """The web view as one of the pipeline's sinks: each written frame, drawn, to `LiveRun.on_frame`."""

    annotated = True

    def __init__(self, live: LiveRun):
        self.live = live

    def write(self, frame: Frame) -> None:
        self.live.on_frame(frame)
