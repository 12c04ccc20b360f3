"""The streaming pipeline: capture -> inference -> class-wise NMS -> render -> sinks, one `Stage` each.

Every stage runs on a thread of its own except inference, whose first worker runs on the caller's (main)
thread, where torch's CPU kernels are fastest (see `stream.stages.run_stages`); ``model.workers`` adds more
inference workers, each on its own frame, and results still leave in frame order.

Queues are bounded, so the slowest stage sets the pace: file sources block (lossless), live sources drop the
oldest frame. `request_stop` ends the stream at the source and lets frames in flight drain; `abort` stops now.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import threading
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from detector.backend import Backend, NmsStage
from detector.config import to_dict
from stream.config import PipelineConfig
from stream.frames import Frame
from stream.metrics import BenchmarkRecord, StageTimer, latency_stats
from stream.queues import BoundedQueue
from stream.render import HudStats, Overlay
from stream.sinks import DisplaySink, JsonlSink, VideoSink
from stream.sources import LiveSource, mask_url
from stream.stages import Stage, StageFailed, run_stages

log = logging.getLogger(__name__)
DRAIN_SECONDS = 5.0


@dataclass
class Outputs:
    """Where one run writes; ``video`` None skips the video. The pipeline writes the video and detections; the
    benchmark record goes where the command that ran it says (``run_stream.py``: both record paths)."""

    video: Path | None
    detections: Path
    record_json: Path | None = None
    record_csv: Path | None = None


class Pipeline:
    def __init__(self, cfg: PipelineConfig, source, source_spec: str, backend: Backend, outputs: Outputs,
                 max_frames: int | None = None, display: bool = False, progress: bool = True):
        self.cfg, self.source, self.source_spec, self.backend, self.outputs = cfg, source, source_spec, backend, outputs
        self.max_frames, self.display, self.progress = max_frames, display, progress
        self.nms = NmsStage(cfg.nms)
        self.overlay = Overlay(cfg.render)
        self.stop = threading.Event()
        self.source_done = threading.Event()
        self.errors: list[StageFailed] = []
        policy = cfg.source.policy
        if policy == "auto":
            policy = "latest" if source.live else "lossless"
        self.policy = policy
        size = cfg.source.queue_size
        self.queues = {
            "capture": BoundedQueue("capture", size, "drop_oldest" if policy == "latest" else "block", self.stop),
            "inference": BoundedQueue("inference", size, "block", self.stop),
            "nms": BoundedQueue("nms", size, "block", self.stop),
            "render": BoundedQueue("render", size, "block", self.stop),
        }
        self.latency = StageTimer("end-to-end")
        self.sink_times: deque[float] = deque(maxlen=30)
        self.written = 0
        self.started = 0.0
        self.stages: list[Stage] = []

    def request_stop(self) -> None:
        """End the stream at the source; frames already captured still flow to the sinks."""
        self.source_done.set()
        if isinstance(self.source, LiveSource):
            self.source.stop.set()

    def abort(self) -> None:
        self.request_stop()
        self.stop.set()

    def _frames(self):
        for frame in itertools.islice(self.source, self.max_frames):
            if self.source_done.is_set():
                return
            yield frame

    def _infer(self, frame: Frame) -> Frame:
        frame.detections = self.backend(frame.image)
        return frame

    def _nms(self, frame: Frame) -> Frame:
        frame.detections = self.nms(frame.detections)
        return frame

    def hud_stats(self) -> HudStats:
        fps = (len(self.sink_times) - 1) / (self.sink_times[-1] - self.sink_times[0]) if len(self.sink_times) > 1 else 0.0
        return HudStats(fps, {s.stage_name: s.timer.recent_ms() for s in self.stages[1:]}, self.dropped)

    @property
    def dropped(self) -> int:
        return sum(q.dropped for q in self.queues.values())

    def _render(self, frame: Frame) -> Frame:
        frame.annotated = self.overlay(frame.image, frame.detections, self.hud_stats())
        return frame

    def _sink_work(self, video: VideoSink | None, jsonl: JsonlSink, window: DisplaySink | None, bar, log_state):
        def write(frame: Frame) -> None:
            if video is not None:
                video.write(frame.annotated)
            jsonl.write(frame)
            if window is not None:
                window.write(frame.annotated)
                if window.closed_by_user:
                    self.request_stop()
            now = time.perf_counter()
            self.latency.add(now - frame.captured_at)
            self.sink_times.append(now)
            self.written += 1
            if bar is not None:
                bar.update(1)
            elif now - log_state[0] >= self.cfg.output.log_every:
                log_state[0] = now
                stats = self.hud_stats()
                log.info("%d frames, %.1f fps, %s, dropped %d", self.written, stats.fps,
                         ", ".join(f"{k} {v:.0f} ms" for k, v in stats.stage_ms.items()), stats.dropped)
        return write

    def run(self) -> BenchmarkRecord:
        """Run to the end of the stream (or a stop); sinks are finalised on every path. Raises `StageFailed`."""
        total = self.source.frame_count
        if total and self.max_frames:
            total = min(total, self.max_frames)
        with ExitStack() as stack:
            video = None
            if self.outputs.video is not None:
                video = stack.enter_context(VideoSink(self.outputs.video, self.source.fps, self.source.size,
                                                      self.cfg.output.codecs))
            jsonl = stack.enter_context(JsonlSink(self.outputs.detections))
            window = stack.enter_context(DisplaySink(mask_url(self.source_spec))) if self.display else None
            bar = None
            if self.progress and not self.source.live:
                bar = stack.enter_context(tqdm(total=total, unit="frame", desc="stream", file=sys.stderr))
            q = self.queues
            self.stages = [
                Stage("capture", lambda f: f, self._frames(), q["capture"], self.stop, self.errors),
                Stage("inference", self._infer, q["capture"], q["inference"], self.stop, self.errors,
                      workers=self.cfg.model.workers,
                      worker_context=getattr(self.backend, "worker_threads", contextlib.nullcontext)),
                Stage("nms", self._nms, q["inference"], q["nms"], self.stop, self.errors),
                Stage("render", self._render, q["nms"], q["render"], self.stop, self.errors),
                Stage("sink", self._sink_work(video, jsonl, window, bar, [time.perf_counter()]),
                      q["render"], None, self.stop, self.errors),
            ]
            self.started = time.perf_counter()
            watchdog = threading.Thread(target=self._watch_drain, daemon=True)
            watchdog.start()
            try:
                run_stages(self.stages, self.stop, self.errors, in_caller=self.stages[1])
            finally:
                self.stop.set()
        return self.record()

    def _watch_drain(self) -> None:
        """After a stop request, give frames in flight DRAIN_SECONDS to reach the sinks, then stop hard."""
        while not self.stop.is_set():
            if self.source_done.wait(0.2):
                if not self.stop.wait(DRAIN_SECONDS):
                    log.warning("frames in flight did not drain within %.0f s; stopping now", DRAIN_SECONDS)
                    self.stop.set()
                return

    def record(self) -> BenchmarkRecord:
        seconds = (self.sink_times[-1] if self.sink_times else time.perf_counter()) - self.started
        m = self.cfg.model
        return BenchmarkRecord(
            kind="stream", source=mask_url(self.source_spec), model=m.name, weights=m.weights,
            backend=self.backend.name, device=str(getattr(self.backend, "device", "cpu")), top_n=m.top_n,
            frames=self.written, seconds=round(seconds, 3),
            fps=round(self.written / seconds, 2) if seconds > 0 else 0.0,
            stages={s.stage_name: latency_stats(s.timer.snapshot()) for s in self.stages},
            latency=latency_stats(self.latency.snapshot()), dropped=self.dropped,
            skipped=getattr(self.source, "skipped", 0),
            queues={n: {"max_depth": q.max_depth, "mean_depth": round(q.mean_depth(), 2), "dropped": q.dropped}
                    for n, q in self.queues.items()},
            variant=f"policy={self.policy}", config=to_dict(self.cfg),
        )
