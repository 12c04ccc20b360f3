"""The streaming pipeline: a list of `Stage`s, by default capture -> inference -> class-wise NMS -> track -> render
-> sink (``track`` when ``track.enabled``).

`Pipeline.stages` is the list; `run` wires it (`stream.stages.wire`): bounded queues between consecutive stages,
timing, end of stream and error handling are the runner's, so adding a stage (a tracker after ``nms``) is one
entry in the list. Every output is a `stream.sinks.Sink` in `Pipeline.sinks`, written in order by the sink stage,
so adding an output (the web view, a CSV) is one entry there. Every stage gets a `Frame` and passes it on; the
sink passes the written frame on too, so a stage appended after it sees exactly what was written. What the run
measured is read through `Pipeline.stats` (`stream.stats.RunStats`), never from the stages or queues.

Every stage runs on a thread of its own except inference, whose first worker runs on the caller's (main)
thread, where torch's CPU kernels are fastest; ``model.workers`` (auto: one per usable core on a CPU) runs
more inference workers, each on its own frame, and results still leave in frame order. In a run of several sources
(`stream.multi`) the inference stage hands each frame to the shared `stream.pool.InferencePool`, whose workers
(the first on the main thread) serve the sources in turn. Queues are bounded, so
the slowest stage sets the pace: file sources block (lossless), live sources drop the oldest frame.
`request_stop` ends the stream at the source and lets frames in flight drain; `abort` stops now. With
``model.interval`` k > 1 (or ``auto`` on a live source or a video file) the capture stage marks which frames the
detector runs on (`stream.interval`); the others pass inference and NMS untouched and the track stage moves the
boxes of the frame before onto them by optical flow (or the tracks' Kalman prediction, ``track.motion``); in a
file it holds them until the next detector frame and blends in its boxes moved back (``track.fill``). On HD
frames only every ``model.full_size_every``-th detector frame runs at the input-size policy's size; the others
run at its 320 base size and the tracker carries lights, signs and boxes too small for that size across them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from core.config import to_dict
from core.labels import LABEL_IDS, SMALL_CLASSES
from core.log import mask_url
from detector.backend import Backend
from detector.config import ModelConfig
from detector.input_size import BASE_MIN_BOX, coarse_size
from detector.models import model_input_size, uses_size_policy
from detector.nms import PipelineNms
from detector.preprocess import fit_frame
from detector.runtime import resolve_workers
from stream.config import PipelineConfig
from stream.frames import Frame
from stream.interval import FILE_INTERVAL_MIN_PIXELS, DetectorSchedule
from stream.pool import InferencePool
from stream.record import BenchmarkRecord
from stream.render import HudStats, Overlay
from stream.sinks import DisplaySink, JsonlSink, Sink, SinkError, VideoSink, video_size
from stream.sources import Source, source_name
from stream.stages import Stage, StageFailed, StageRunner, run_stages, wire
from stream.stats import RunStats
from stream.timing import latency_stats
from tracking.tracker import Tracker

log = logging.getLogger(__name__)
DRAIN_SECONDS = 5.0
# The HUD's numbers change this often: readable (a figure redrawn every frame flickers), and its text is drawn only then
HUD_REFRESH_SECONDS = 0.25
CARRIED = frozenset(LABEL_IDS[name] for name in SMALL_CLASSES)  # carried by the tracker on base-size frames


def coarse_size_of(width: int, height: int) -> tuple[int, int]:
    """The base size of a frame the pipeline runs a base-size pass on (`detector.input_size.coarse_size`); a live
    frame that came smaller than the source said stays as it is."""
    return coarse_size(width, height) or (width, height)


@dataclass
class Outputs:
    """Where one run writes; ``video`` None skips the video. The pipeline writes the video and detections; the
    benchmark record goes where the command that ran it says (``driving-detect stream``: both record paths).
    ``stale_video``: an earlier run's video in the same folder, set aside when this run starts (it writes none)."""

    video: Path | None
    detections: Path
    record_json: Path | None = None
    record_csv: Path | None = None
    stale_video: Path | None = None


def resolved_model(model: ModelConfig, backend: Backend) -> ModelConfig:
    """``model`` with what `build_backend` resolved for ``backend`` (backend, precision, device, workers and threads;
    the rest, e.g. a top-N the tuner set on a shared backend, stays ``model``'s). A backend built otherwise (a
    test's) gets this machine's worker count."""
    runtime = getattr(backend, "runtime", None)
    if runtime is None:
        return resolve_workers(model)
    return dataclasses.replace(model, backend=runtime.backend, precision=runtime.precision, device=runtime.device,
                               workers=runtime.workers, threads=runtime.threads)


class Pipeline:
    """One run of ``stages`` over ``source``; build it, change ``stages`` if needed, then `run` it once."""

    def __init__(self, cfg: PipelineConfig, source: Source, source_spec: str, backend: Backend, outputs: Outputs,
                 max_frames: int | None = None, display: bool = False, progress: bool = True,
                 source_id: str | None = None, pool: InferencePool | None = None):
        cfg = dataclasses.replace(cfg, model=resolved_model(cfg.model, backend))
        self.cfg, self.source, self.source_spec, self.backend, self.outputs = cfg, source, source_spec, backend, outputs
        self.max_frames, self.progress = max_frames, progress
        self.source_id = source_id or source_name(source_spec)
        # With a pool (several sources in one run) the pool's workers run the backend for every source; this
        # source's inference stage only hands frames over and waits, off the main thread, which the pool has.
        self._detect = backend if pool is None else functools.partial(pool.infer, self.source_id)
        if pool is not None:
            pool.register(self.source_id)
        self.log_source = pool is not None  # log lines name the source in a run of several
        self.nms = PipelineNms(cfg.nms)
        self.overlay = Overlay(cfg.render, cfg.track.trail if cfg.track.enabled else 0)
        info = source.info
        self.video_size = video_size(info.size, cfg.output.max_size)  # drawn at this size, for video and web view
        m = cfg.model
        self.input_size = "{}x{}".format(*model_input_size(m.name, m.min_size, m.max_size, *info.size))
        log.info("%s%dx%d frames: the model sees %s, the annotated video is %dx%d", self._log_prefix(), *info.size,
                 self.input_size, *self.video_size)
        self.tracker = Tracker(cfg.track, info.fps) if cfg.track.enabled else None
        # Base-size detector frames (model.full_size_every): only for a policy model on video frames it would
        # enlarge well beyond its base, and only with a tracker to carry small objects across them
        base = coarse_size(*info.size)
        self.coarse = (m.full_size_every > 1 and self.tracker is not None and uses_size_policy(m.name, m.min_size)
                       and not info.stills and base is not None)
        # skipped frames of a file wait in the track stage for the next detector frame, to be filled from both sides
        can_fill = (self.tracker is not None and cfg.track.fill == "auto" and cfg.track.motion == "flow"
                    and not info.live and not info.stills)
        hd = self.coarse and info.size[0] * info.size[1] >= FILE_INTERVAL_MIN_PIXELS
        # without a tracker nothing fills skipped frames: interval auto is 1 (an int k > 1 is a config error)
        self.schedule = DetectorSchedule(m.interval if self.tracker is not None else 1, m.max_interval,
                                         m.interval_phase, info.fps, m.workers, info.live, skip=can_fill or hd)
        self.fill_between = can_fill and not self.schedule.adaptive and self.schedule.k > 1
        self._held: list[Frame] = []
        self._last_detected: int | None = None  # index of the latest detector frame the track stage saw
        if self.coarse:
            k = self.schedule.k
            every = ("with k adapted to the camera" if self.schedule.adaptive
                     else "on every frame" if k == 1 else f"on 1 frame in {k}")
            log.info("%sHD frames: the detector runs %s (model.interval=%s); one detector frame in %d sees %s, the "
                     "others %s (model.full_size_every); lights, signs and far objects carried by flow between",
                     self._log_prefix(), every, m.interval, m.full_size_every, self.input_size, "{}x{}".format(*base))
        if self.fill_between:
            log.info("%sthe detector runs on 1 frame in %d (model.interval=%s); the frames between get boxes from "
                     "the detector frames on both sides (track.fill=auto), so they are written %d frame(s) later",
                     self._log_prefix(), self.schedule.k, m.interval, self.schedule.k - 1)
        self._scheduled = 0  # detector frames scheduled so far
        # boxes too small for a base-size pass (in frame pixels), carried by the tracker on those frames
        self.carry_below = BASE_MIN_BOX * min(info.size) / min(base) if self.coarse else 0.0
        if self.tracker is not None and not info.fps_known:
            log.warning("the source reports no FPS: track buffers and timestamps assume source.fallback_fps = %g",
                        info.fps)
        self.detector_frames = 0
        self.stop = threading.Event()
        self.source_done = threading.Event()
        self.interrupted = False
        self.reached_max = False
        self.errors: list[StageFailed] = []
        policy = cfg.source.policy
        if policy == "auto":
            policy = "latest" if source.info.live else "lossless"
        self.policy = policy
        self.stats = RunStats(self.source_id, source, self.expected_frames, self.tracker is not None, self.record)
        # The outputs, written in this order by the sink stage; a new output is one more entry.
        self.sinks: list[Sink] = [
            *([VideoSink(outputs.video, info.fps, self.video_size, cfg.output, info.live)] if outputs.video else []),
            JsonlSink(outputs.detections),
            *([DisplaySink(mask_url(source_spec), self.request_stop)] if display else []),
        ]
        self.stages: list[Stage] = [
            Stage("capture", self._schedule, overflow="drop_oldest" if policy == "latest" else "block"),
            Stage("inference", self._infer, workers=cfg.model.workers,
                  worker_context=backend.worker_threads if pool is None else contextlib.nullcontext,
                  main_thread=pool is None),
            Stage("nms", self._nms),
            *([Stage("track", self._track, flush=self._release_held)] if self.tracker is not None else []),
            Stage("render", self._render),
            Stage("sink", self._write),
        ]
        self._runners: list[StageRunner] = []
        # Draw the overlay only for a sink that shows it (set when the run starts, from the sinks then in the list):
        # with --no-video it is about 1 ms of CPU a frame taken from inference on a small CPU.
        self.annotate = False
        self._bar: tqdm | None = None
        self._last_log = 0.0
        self._hud: HudStats | None = None
        self._hud_at = 0.0

    def request_stop(self) -> None:
        """End the stream at the source; frames already captured still flow to the sinks. The record says the run
        was ``interrupted``."""
        self.interrupted = True
        self.source_done.set()
        self.source.stop()

    def abort(self) -> None:
        self.request_stop()
        self.stop.set()

    @property
    def stopping(self) -> bool:
        """A stop was requested (Ctrl-C, SIGTERM, a closed window)."""
        return self.source_done.is_set()

    def wait_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a stop request; True if one came."""
        return self.source_done.wait(timeout)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def alive(self) -> bool:
        """Any stage thread still running."""
        return any(runner.is_alive() for runner in self._runners)

    def _frames(self):
        for count, frame in enumerate(itertools.islice(self.source, self.max_frames), 1):
            if self.source_done.is_set():
                return
            known = self.source.info.frame_count
            self.reached_max = count == self.max_frames and (known is None or count < known)
            frame.source_id = self.source_id
            yield frame

    def _schedule(self, frame: Frame) -> Frame:
        frame.detect = self.schedule.detect(frame.index)
        if frame.detect and self.coarse:
            frame.coarse = self._scheduled % self.cfg.model.full_size_every != 0
            self._scheduled += 1
        return frame

    def _infer(self, frame: Frame) -> Frame:
        if frame.detect:
            started = time.perf_counter()
            if frame.coarse:
                image, back = fit_frame(frame.image, coarse_size_of)
                found = self._detect(image)
                frame.detections = dataclasses.replace(found, boxes=found.boxes * back)
            else:
                frame.detections = self._detect(frame.image)
            self.schedule.observe(time.perf_counter() - started)
        return frame

    def _nms(self, frame: Frame) -> Frame:
        if frame.detect:
            frame.detections = self.nms(frame.detections)
        return frame

    def _track(self, frame: Frame) -> Frame | list[Frame] | None:
        """A detector frame's tracked boxes, or a skipped frame's moved ones; with ``fill_between`` a skipped frame
        is held (None passes nothing on) and goes on, filled from both sides, with the next detector frame."""
        if not frame.detect:
            frame.detections = self.tracker.predict(frame.timestamp, frame.image)
            if self.fill_between and self._last_detected is not None:
                self._held.append(frame)
                return None
            return frame
        if frame.coarse:
            frame.detections = self.tracker.update(frame.detections, frame.timestamp, frame.image, CARRIED,
                                                   self.carry_below)
        else:
            frame.detections = self.tracker.update(frame.detections, frame.timestamp, frame.image)
        self.detector_frames += 1
        if not self.fill_between:
            return frame
        held, self._held = self._held, []
        if held:
            span = frame.index - self._last_detected
            filled = self.tracker.fill(frame.detections, frame.image,
                                       [(f.detections, f.image, (f.index - self._last_detected) / span) for f in held])
            for skipped, detections in zip(held, filled):
                skipped.detections = detections
        self._last_detected = frame.index
        return [*held, frame]

    def _release_held(self) -> list[Frame]:
        """At the end of the stream: the skipped frames after the last detector frame, with their forward boxes."""
        held, self._held = self._held, []
        return held

    def _render(self, frame: Frame) -> Frame:
        if not self.annotate:
            return frame
        now = time.perf_counter()
        if self._hud is None or now - self._hud_at >= HUD_REFRESH_SECONDS:
            self._hud, self._hud_at = self.stats.hud(), now
        frame.annotated = self.overlay(frame.image, frame.detections, self._hud, self.video_size)
        return frame

    def _write(self, frame: Frame) -> Frame:
        for sink in self.sinks:
            sink.write(frame)
        now = self.stats.frame_written(frame.captured_at)
        if self._bar is not None:
            self._bar.update(1)
        elif now - self._last_log >= self.cfg.output.log_every:
            self._last_log = now
            stats = self.stats.hud()
            log.info("%s%d frames, %.1f fps, %s, dropped %d", self._log_prefix(), self.stats.written, stats.fps,
                     ", ".join(f"{k} {v:.0f} ms" for k, v in stats.stage_ms.items()), stats.dropped)
        return frame

    def _log_prefix(self) -> str:
        return f"{self.source_id}: " if self.log_source else ""

    @property
    def expected_frames(self) -> int | None:
        """Frames a run to the end writes: the source's frame count, capped by ``max_frames`` (None: neither is
        known, e.g. a live source without --max-frames)."""
        known = [n for n in (self.source.info.frame_count, self.max_frames) if n]
        return min(known) if known else None

    def run(self) -> BenchmarkRecord:
        """Run to the end of the stream (or a stop); sinks are finalised on every path. Raises `StageFailed`
        (an output that fails while it is written or finalised, e.g. on a full disk, is the ``sink`` stage's
        failure), or `SinkError` when an output cannot be opened at all (bad input)."""
        info, total = self.source.info, self.expected_frames
        self.annotate = any(sink.annotated for sink in self.sinks)
        with ExitStack() as opening:
            for sink in self.sinks:
                opening.enter_context(sink)
            if self.progress and not info.live:
                self._bar = opening.enter_context(tqdm(total=total, unit="frame", desc="stream", file=sys.stderr))
                opening.enter_context(logging_redirect_tqdm())  # log lines above the bar, never glued to it
            outputs = opening.pop_all()
        try:
            with outputs:
                self._runners, queues = wire(self.stages, self._frames(), self.cfg.source.queue_size,
                                             self.stop, self.errors)
                self.stats.attach(self._runners, queues)
                self._last_log = time.perf_counter()
                threading.Thread(target=self._watch_drain, daemon=True).start()
                try:
                    run_stages(self._runners, self.stop, self.errors)
                except StageFailed:
                    pass  # raised below, once every output is finalised
                finally:
                    self.stop.set()
        except SinkError as exc:  # finalising an output failed (a full disk)
            self.errors.append(StageFailed("sink", exc))
        if self.errors:
            raise self.errors[0]
        return self.record()

    def _watch_drain(self) -> None:
        """After a stop request, give frames in flight DRAIN_SECONDS to reach the sinks, then stop hard."""
        while not self.stop.is_set():
            if self.source_done.wait(0.2):
                if not self.stop.wait(DRAIN_SECONDS):
                    log.warning("frames in flight did not drain within %.0f s; stopping now", DRAIN_SECONDS)
                    self.stop.set()
                return

    @property
    def interval_used(self) -> str:
        """``model.interval`` as this run used it: ``auto`` where it adapts (live), else its one k."""
        return "auto" if self.schedule.adaptive else str(self.schedule.k)

    def record(self) -> BenchmarkRecord:
        stats = self.stats
        seconds, written = stats.seconds, stats.written
        m = self.cfg.model
        return BenchmarkRecord(
            kind="stream", source=mask_url(self.source_spec), model=m.name, weights=m.weights,
            backend=self.backend.name, device=str(self.backend.device), top_n=m.top_n,
            frames=written, seconds=round(seconds, 3),
            fps=round(written / seconds, 2) if seconds > 0 else 0.0,
            stages=stats.stage_stats(), latency=latency_stats(stats.latency.snapshot()), dropped=stats.dropped,
            skipped=stats.skipped, reconnects=stats.reconnects, gap_seconds=round(stats.gap_seconds, 3),
            tracks=self.tracker.tracks_seen if self.tracker is not None else 0,
            detector_frames=self.detector_frames if self.tracker is not None else written,
            queues=stats.queue_stats(),
            variant=f"policy={self.policy}" + (f" interval={self.interval_used}" if self.interval_used != "1" else "")
            + (f" full_size_every={m.full_size_every}" if self.coarse else ""),
            config=to_dict(self.cfg), precision=m.precision,
            workers=m.workers, threads=m.threads,
            input_size=self.input_size, source_size="{}x{}".format(*self.source.info.size),
            ended=self.ended, source_frames=self.source.info.frame_count,
        )

    @property
    def ended(self) -> str:
        """How the run ended, for the record: ``failed``, ``interrupted``, ``max_frames`` or ``complete``."""
        if self.errors:
            return "failed"
        if self.interrupted:
            return "interrupted"
        return "max_frames" if self.reached_max else "complete"
