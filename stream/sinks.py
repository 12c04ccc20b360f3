"""Sinks: every output of a run is a `Sink` (annotated video, detections JSONL, a window, the web view, any
output added later), opened before the first frame, given each written `Frame`, closed on every exit path (each
is a context manager). A new output is one class here (or anywhere) and one entry in `Pipeline.sinks`."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from fractions import Fraction
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self

import av
import cv2
import numpy as np

from stream.config import OutputConfig
from stream.frames import Frame

log = logging.getLogger(__name__)
FRAGMENT_SECONDS = 1.0  # the annotated MP4 is written in fragments this long: what a SIGKILL or full disk can lose


class SinkError(RuntimeError):
    """An output that can't be created or written."""


class Sink(Protocol):
    """One output of a run. ``annotated``: it uses ``frame.annotated``, so the render stage draws the overlay."""

    annotated: bool

    def open(self) -> None:
        """Create the output; a `SinkError` for one that cannot be created (bad input)."""
        ...

    def write(self, frame: Frame) -> None:
        """Write one frame; a `SinkError` for one that fails (a full disk)."""
        ...

    def close(self) -> None:
        """Finalise the output; called once on every exit path after a successful `open`."""
        ...


class SinkBase:
    """`Sink`'s context-manager form and defaults (nothing to open or close, no overlay needed)."""

    annotated = False

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prepare_output(path: Path) -> Path:
    """Create the parent folder and prove it is writable: the sinks, as they open."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise SinkError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


def check_writable(path: Path) -> Path:
    """Prove ``path`` can be written before anything is opened, creating nothing: a run that then fails to start
    (a source that does not open) leaves no empty files or folders behind."""
    if path.is_dir():
        raise SinkError(f"cannot write '{path}': it is a folder")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise SinkError(f"cannot write '{path}': permission denied")
        return path
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        tempfile.TemporaryFile(dir=folder).close()  # the one proof that also covers read-only mounts
    except OSError as exc:
        raise SinkError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


class OutputWatch:
    """Notices, at most once a second, that an output file was removed or moved away (its folder deleted
    mid-run): writes to an open file would otherwise go on into a file nobody can read."""

    def __init__(self, path: Path):
        self.path, self.checked = path, time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if now - self.checked >= 1.0:
            self.checked = now
            if not self.path.exists():
                raise SinkError(f"'{self.path}' vanished during the run (its folder was removed or moved)")


def video_size(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """The annotated video's (width, height) for a source of ``size``: scaled down so its long side is at most
    ``max_size`` (0: no limit), aspect kept, even (yuv420p needs it)."""
    width, height = size
    scale = min(1.0, max_size / max(width, height)) if max_size else 1.0
    if scale == 1.0:
        return size
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


class VideoSink(SinkBase):
    """The annotated video, timed like the source.

    File sources keep their FPS and frame count (frame n at n / fps). Live sources place each frame at its capture
    time (a variable-rate MP4 at millisecond resolution; a dropped frame's slot shows the previous frame), so the
    video lasts as long as the run did and speeds and event times read from it are real. ``codec`` ``auto`` and
    ``h264`` write H.264 through PyAV, ``+faststart`` so browsers play it while it downloads (OpenCV's pip wheel
    cannot write H.264); ``mp4v`` and ``mjpg`` use OpenCV's writer at a constant rate, as does ``auto`` when
    PyAV cannot encode.
    """

    annotated = True

    def __init__(self, path: Path, fps: float, size: tuple[int, int], cfg: OutputConfig, live: bool = False):
        self.path, self.fps, self.size, self.cfg, self.live = path, fps, size, cfg, live
        self.writer: _AvWriter | cv2.VideoWriter | None = None
        self.codec = ""
        self.frames = 0
        self.watch = OutputWatch(path)

    def open(self) -> None:
        prepare_output(self.path)
        if self.cfg.codec in ("auto", "h264"):
            errors = []
            for encoder in h264_encoders():
                try:
                    self.writer, self.codec = _AvWriter(self.path, encoder, self.fps, self.size, self.live,
                                                        self.cfg.h264_options), encoder
                    break
                except (av.FFmpegError, ValueError) as exc:
                    errors.append(f"{encoder}: {exc}")
            if self.writer is None and self.cfg.codec == "h264":
                raise SinkError(f"cannot write H.264 to '{self.path}': {'; '.join(errors)}")
            if self.writer is None:
                log.warning("H.264 is not available (%s); writing MPEG-4 Part 2", "; ".join(errors))
        if self.writer is None:
            self._open_opencv("MJPG" if self.cfg.codec == "mjpg" else "mp4v")
        log.info("video %s: %s, %dx%d, %s", self.path, self.codec, *self.size,
                 "frames at their capture times" if self.live and isinstance(self.writer, _AvWriter)
                 else f"{self.fps:.2f} fps")

    def _open_opencv(self, fourcc: str) -> None:
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
        if not writer.isOpened():
            writer.release()
            raise SinkError(f"OpenCV cannot write {fourcc} video to '{self.path}'")
        self.writer, self.codec = writer, fourcc

    def write(self, frame: Frame) -> None:
        self.write_image(frame.annotated, frame.timestamp)

    def write_image(self, image: np.ndarray, timestamp: float | None = None) -> None:
        """``timestamp``: seconds since the run started (used for live sources only)."""
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        try:
            if isinstance(self.writer, _AvWriter):
                self.writer.write(image, timestamp if self.live and timestamp is not None else None)
            else:
                self.writer.write(image)
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(f"cannot write '{self.path}': {getattr(exc, 'strerror', None) or exc}") from None
        self.frames += 1
        self.watch.check()

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                if isinstance(writer, _AvWriter):
                    writer.close()
                else:
                    writer.release()
            except (OSError, av.FFmpegError) as error:
                raise SinkError(f"cannot finish '{self.path}': {getattr(error, 'strerror', None) or error}") from None


def h264_encoders() -> list[str]:
    """NVENC first when a CUDA GPU is present (encoding then costs the CPU nothing), else x264."""
    import torch  # the pipeline has loaded it already; imported here so the sinks don't need it otherwise

    return ["h264_nvenc", "libx264"] if torch.cuda.is_available() else ["libx264"]


class _AvWriter:
    """An H.264 MP4 through PyAV. Time base: 1/fps for constant-rate files, 1 ms for live sources (``pts`` from
    capture times, each strictly after the last; no B-frames). yuv420p, the pixel format every browser decodes, needs even
    sizes: an odd width or height is scaled down by one pixel. Fragmented (``empty_moov``: the index travels with
    each fragment) and flushed per packet, so each finished fragment is on disk, not in FFmpeg's write buffer."""

    def __init__(self, path: Path, encoder: str, fps: float, size: tuple[int, int], live: bool,
                 options: dict[str, str]):
        self.container = av.open(str(path), "w", format="mp4", options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self.stream = self.container.add_stream(encoder, rate=rate)
            self.stream.width, self.stream.height = size[0] // 2 * 2, size[1] // 2 * 2
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.gop_size = max(1, round(fps * FRAGMENT_SECONDS))
            self.time_base = Fraction(1, 1000) if live else 1 / rate
            self.stream.codec_context.time_base = self.stream.time_base = self.time_base
            if encoder == "libx264":
                self.stream.options = dict(options)
            if live:  # B-frames reorder, and with jumps in pts the track's sample durations then come out short
                self.stream.codec_context.max_b_frames = 0
            self.stream.codec_context.open()
        except BaseException:
            self.container.close()
            raise
        self.even = (self.stream.width, self.stream.height) != size
        self.next_pts = 0

    def write(self, image: np.ndarray, timestamp: float | None) -> None:
        if self.even:
            image = cv2.resize(image, (self.stream.width, self.stream.height), interpolation=cv2.INTER_AREA)
        # OpenCV's BGR to I420 is the BT.601 limited-range conversion swscale would do (within 1 level), and
        # saved 0.4 ms of CPU and 0.7 ms of the sink's time a 640x360 frame (2-core Xeon, 2026-12-02)
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        pts = self.next_pts if timestamp is None else max(self.next_pts, round(timestamp * 1000))
        frame.pts, frame.time_base = pts, self.time_base
        self.next_pts = pts + 1
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        try:
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


class JsonlSink(SinkBase):
    """One JSON line per frame, flushed and fsync'd per frame so a crash loses at most the frame in flight."""

    def __init__(self, path: Path, sync: bool = False):
        self.path, self.sync = path, sync
        self.file = None
        self.lines = 0
        self.watch = OutputWatch(path)

    def open(self) -> None:
        prepare_output(self.path)
        self.file = self.path.open("w")

    def write(self, frame: Frame) -> None:
        record = {"frame": frame.index, "timestamp": round(frame.timestamp, 4), **frame.detections.to_json()}
        if frame.source_time is not None:
            record["source_timestamp"] = round(frame.source_time, 4)
        if frame.detections.track_ids is not None:
            record["source"] = frame.boxes_from
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            if self.sync:
                os.fsync(self.file.fileno())
        except OSError as exc:
            raise SinkError(f"cannot write '{self.path}': {exc.strerror or exc}") from None
        self.lines += 1
        self.watch.check()

    def close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            try:
                file.close()
            except OSError as error:
                raise SinkError(f"cannot finish '{self.path}': {error.strerror or error}") from None


class DisplaySink(SinkBase):
    """An OpenCV window where a display exists; without one it warns once and does nothing. ``q`` or Esc in the
    window calls ``on_close`` (the pipeline's stop request)."""

    annotated = True

    def __init__(self, title: str, on_close: Callable[[], None]):
        self.title, self.on_close = title, on_close
        self.enabled = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt")
        if not self.enabled:
            log.warning("--display: no display found (DISPLAY is unset); showing nothing")

    def write(self, frame: Frame) -> None:
        if self.enabled:
            cv2.imshow(self.title, frame.annotated)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                self.on_close()

    def close(self) -> None:
        if self.enabled:
            cv2.destroyWindow(self.title)
