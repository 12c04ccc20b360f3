"""Frame sources: video files and image folders (lossless), cameras and URLs (live, reconnecting).

Every source is a `Source`: an iterator of `Frame`s with a `VideoInfo` (size, FPS, frame count, live), counts
of ``skipped`` (corrupt) frames, ``reconnects`` and ``gap_seconds`` (time without frames between a stall and
its reconnect), and ``stop()``. Open failures raise `SourceError` before the pipeline starts. Video files and
stream URLs are read with FFmpeg through PyAV (`PyAvFeed` for streams), cameras and images with OpenCV. Every
frame keeps the size the source gave it, so boxes are always in that frame's pixels (`SizeWatch`).
"""
from __future__ import annotations

import glob
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from core.images import is_image, read_bgr
from core.log import mask_url
from stream.config import SourceConfig
from stream.frames import Frame

log = logging.getLogger(__name__)
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://")
MAX_CONSECUTIVE_BAD = 25
MIN_SIDE = 16  # the smallest frame side the pipeline takes


class SourceError(RuntimeError):
    """A source that cannot be opened or read; one line, credentials masked."""


@dataclass(frozen=True)
class VideoInfo:
    """What a source knows before its first frame.

    size: (width, height) in pixels; fps: the source's rate (the fallback when it reports none);
    frame_count: None when unknown or endless; live: frames arrive in real time whether or not we keep up;
    fps_known: False when ``fps`` is ``source.fallback_fps`` because the source reports none; stills: the frames
    are separate images (a folder or glob), each detected as it is, as the evaluate command does, never skipped
    or shrunk by a default (``model.interval=auto``, ``model.full_size_every``).
    """

    size: tuple[int, int]
    fps: float
    frame_count: int | None
    live: bool
    fps_known: bool = True
    stills: bool = False


class Source(Protocol):
    """An opened source: iterate it for `Frame`s; ``stop()`` ends the iteration soon, from any thread."""

    info: VideoInfo
    skipped: int
    reconnects: int
    gap_seconds: float

    def __iter__(self) -> Iterator[Frame]: ...

    def stop(self) -> None: ...


def quiet_opencv() -> None:
    """OpenCV and its FFmpeg backend write their own warnings to stderr (a refused RTSP connection gives three
    lines before ours); the sources report those conditions themselves in one line. Set the variables (e.g.
    OPENCV_LOG_LEVEL=INFO) to see them again."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def source_name(spec: str) -> str:
    """A short folder-safe name for outputs: file stem, ``cam0``, or the URL's host and path."""
    if spec.isdigit():
        return f"cam{spec}"
    if spec.startswith(URL_SCHEMES):
        rest = mask_url(spec).split("://", 1)[1].replace("***@", "")
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", rest).strip("_")[:60] or "stream"
    path = Path(spec.rstrip("/"))
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.suffix else path.name) or "images"


def _sane_fps(fps: float | None, fallback: float) -> tuple[float, bool]:
    """A source's reported FPS and True, or ``fallback`` and False when it reports none (or an absurd one)."""
    return (fps, True) if fps and 1.0 <= fps <= 240.0 else (fallback, False)


def check_first_size(what: str, size: tuple[int, int]) -> None:
    """A source whose frames are smaller than `MIN_SIDE` on a side (a 1-pixel-high strip) is bad input: nothing
    can be detected in it, and the detector's resize would have nothing to work on."""
    if min(size) < MIN_SIDE:
        raise SourceError(f"{what} gives {size[0]}x{size[1]} frames; frames need at least {MIN_SIDE} pixels a side")


class SizeWatch:
    """Frames keep the size they come in, so boxes are in the pixels of the frame the source gave; a change of
    size is said once, naming the frame (the annotated video keeps its first size, `stream.sinks.VideoSink`).
    A frame below `MIN_SIDE` pixels a side is skipped, with one warning each time the size changes to it."""

    def __init__(self, what: str, size: tuple[int, int]):
        self.what, self.size = what, size

    def check(self, index: int, image: np.ndarray) -> bool:
        """Whether frame ``index`` can go on (False: skip it)."""
        size = (image.shape[1], image.shape[0])
        if size != self.size:
            log.warning("%s: frame %d is %dx%d, the frames before it %dx%d; its boxes are in its own pixels and "
                        "the annotated video keeps its first size%s", self.what, index, *size, *self.size,
                        "" if min(size) >= MIN_SIDE else f" (below {MIN_SIDE} pixels a side: skipped)")
            self.size = size
        return min(size) >= MIN_SIDE


# A stream's display rotation (counterclockwise degrees, as PyAV gives it) -> the OpenCV turn that applies it
ROTATIONS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as BGR the way players show it: a phone's portrait video is stored landscape with a rotation in
    its display matrix, which PyAV reports but does not apply (OpenCV's capture did)."""
    image = frame.to_ndarray(format="bgr24")
    turn = ROTATIONS.get(round((frame.rotation or 0) / 90) % 4)
    return image if turn is None else cv2.rotate(image, turn)


class VideoFileSource:
    """A video file, every frame in order and at the size it was encoded (FFmpeg through PyAV, with its decoder
    threads); a corrupt frame in the middle is skipped and counted."""

    def __init__(self, path: Path, cfg: SourceConfig):
        if not path.is_file():
            raise SourceError(f"video file '{path}' does not exist")
        self.path = path
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError, UnicodeDecodeError):
            raise SourceError(f"'{path}' is not a readable video") from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"'{path}' is not a readable video: it has no video stream")
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding keeps up with 1080p on two cores
        fps, known = _sane_fps(float(stream.average_rate or stream.guessed_rate or 0), cfg.fallback_fps)
        self._images = self._decode(stream)
        first = next(self._images, None)
        if first is None:
            self.container.close()
            raise SourceError(f"video '{path}' has no frames")
        self._first = first
        self.info = VideoInfo((first[1].shape[1], first[1].shape[0]), fps, stream.frames or None, live=False,
                              fps_known=known)
        try:
            check_first_size(f"video '{path}'", self.info.size)
        except SourceError:
            self.container.close()
            raise
        self.skipped = 0
        self.reconnects, self.gap_seconds = 0, 0.0  # files and folders never reconnect
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def _decode(self, stream: av.video.stream.VideoStream) -> Iterator[tuple[int, np.ndarray]]:
        """(index, BGR image) in order; the index counts the frames a corrupt packet lost too."""
        index = bad = 0
        for packet in self.container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                bad += 1
                index += 1
                if bad >= MAX_CONSECUTIVE_BAD:
                    log.warning("%s: %d packets in a row could not be decoded; stopping there", self.path, bad)
                    return
                continue
            if frames and bad:
                self.skipped += bad
                log.warning("frames %d-%d of %s could not be decoded: skipped", index - bad, index - 1, self.path)
            for frame in frames:
                bad = 0
                yield index, upright(frame)
                index += 1

    def __iter__(self) -> Iterator[Frame]:
        watch = SizeWatch(str(self.path), self.info.size)
        fps = self.info.fps
        try:
            for index, image in itertools.chain([self._first], self._images):
                if self._stopping.is_set():
                    return
                if watch.check(index, image):
                    yield Frame(index, index / fps, time.perf_counter(), image)
                else:
                    self.skipped += 1
        finally:
            self.container.close()


class ImageFolderSource:
    """A folder or glob of images in name order; unreadable images are skipped and counted."""

    def __init__(self, spec: str, cfg: SourceConfig):
        path = Path(spec)
        files = sorted(p for p in path.iterdir()) if path.is_dir() else sorted(Path(p) for p in glob.glob(spec))
        self.files = [p for p in files if is_image(p)]
        if not self.files:
            raise SourceError(f"no images found at '{spec}'")
        first = next((im for im in map(read_bgr, self.files[:MAX_CONSECUTIVE_BAD]) if im is not None), None)
        if first is None:
            raise SourceError(f"none of the first images at '{spec}' is readable")
        self.info = VideoInfo((first.shape[1], first.shape[0]), cfg.fallback_fps, len(self.files), live=False,
                              fps_known=False, stills=True)
        check_first_size(f"images at '{spec}'", self.info.size)
        self.skipped = 0
        self.reconnects, self.gap_seconds = 0, 0.0  # files and folders never reconnect
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def __iter__(self) -> Iterator[Frame]:
        watch = SizeWatch(str(Path(self.files[0]).parent), self.info.size)
        for index, path in enumerate(self.files):
            if self._stopping.is_set():
                return
            image = read_bgr(path)
            if image is None:
                self.skipped += 1
                log.warning("image %s is unreadable: skipped", path)
                continue
            if watch.check(index, image):
                yield Frame(index, index / self.info.fps, time.perf_counter(), image)
            else:
                self.skipped += 1


class Feed(Protocol):
    """An opened live capture. ``read`` gives the next image and the source's own timestamp in seconds (None when
    it has none), or None when the source ended or sent nothing for ``source.read_timeout``."""

    fps: float

    def read(self) -> tuple[np.ndarray, float | None] | None: ...

    def close(self) -> None: ...


class OpenCvFeed:
    """A camera through OpenCV (V4L2, DirectShow, AVFoundation): what OpenCV does best."""

    def __init__(self, capture: cv2.VideoCapture, what: str):
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"could not open {what}")
        self.capture, self.fps = capture, capture.get(cv2.CAP_PROP_FPS)

    def read(self) -> tuple[np.ndarray, float | None] | None:
        ok, image = self.capture.read()
        return (image, None) if ok and image is not None else None

    def close(self) -> None:
        self.capture.release()


class PyAvFeed:
    """A stream URL through FFmpeg (PyAV), which OpenCV's capture cannot give: a per-read timeout (a silent
    camera is noticed in ``read_timeout``, not FFmpeg's default of tens of seconds), the RTSP transport and other
    demuxer options without environment variables, and the stream's own timestamps."""

    def __init__(self, url: str, options: dict[str, str], open_timeout: float, read_timeout: float):
        try:
            self.container = av.open(url, options=options, timeout=(open_timeout, read_timeout))
            self.read_timeout = read_timeout
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(mask_url(str(exc.strerror or exc))) from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError("it has no video stream")
        stream = self.container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threading holds frames back: latency, and a flush on a stall
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self._packets = self.container.demux(stream)
        self._decoded: deque[av.VideoFrame] = deque()

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame. Packets are demuxed and decoded here, not by PyAV's ``decode`` iterator, which on a
        read timeout flushes the decoder's held frames first: they would arrive as fresh ones after the stall."""
        bad = 0
        while not self._decoded:
            started = time.monotonic()
            try:
                packet = next(self._packets)
                if time.monotonic() - started >= 0.9 * self.read_timeout:
                    # RTP over UDP: the demuxer hands over the packet it held back only when its read times out
                    log.debug("a packet arrived after %.1f s of silence: counted as a stall", self.read_timeout)
                    return None
            except StopIteration:
                return None
            except (av.FFmpegError, OSError) as exc:  # a read timeout, a closed connection
                log.debug("stream read ended: %s", mask_url(str(exc)))
                return None
            try:
                self._decoded.extend(packet.decode())
            except av.InvalidDataError:  # a corrupt packet: the next one may decode
                bad += 1
                if bad >= MAX_CONSECUTIVE_BAD:
                    return None
        frame = self._decoded.popleft()
        return frame.to_ndarray(format="bgr24"), frame.time

    def close(self) -> None:
        self.container.close()


def stream_options(spec: str, cfg: SourceConfig) -> list[dict[str, str]]:
    """FFmpeg options for each way to open ``spec``, in the order to try: ``rtsp_transport`` ``auto`` tries TCP
    (passes firewalls and loses nothing), then UDP (what some cameras and servers only serve)."""
    if not spec.startswith(("rtsp://", "rtsps://")):
        return [dict(cfg.ffmpeg_options)]
    transports = ["tcp", "udp"] if cfg.rtsp_transport == "auto" else [cfg.rtsp_transport]
    return [{"rtsp_transport": t, **cfg.ffmpeg_options} for t in transports]


def _open_with_timeout(opener: Callable[[], Feed], timeout: float, what: str) -> Feed:
    """Open in a helper thread so a URL that never answers can't hang the caller."""
    result: list[Feed | BaseException] = []

    def target() -> None:
        try:
            result.append(opener())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or not result:
        raise SourceError(f"could not open {what} within {timeout:g} s")
    if isinstance(result[0], SourceError):
        raise result[0]
    if isinstance(result[0], BaseException):
        raise SourceError(f"could not open {what}: {mask_url(str(result[0]))}")
    return result[0]


class LiveSource:
    """A camera index or stream URL, reconnecting when it stalls.

    A read that returns nothing for ``source.read_timeout`` counts as a stall: the source is reopened with
    backoff and the gap is logged and counted from the last good frame to the first new one. Frames are stamped
    with their capture time from the start of the run (and the stream's own time where it has one); a source
    that comes back at another resolution keeps it (boxes in its pixels), with one warning.
    """

    def __init__(self, spec: str, cfg: SourceConfig, opener: Callable[[str], Feed] | None = None):
        self.spec, self.cfg = spec, cfg
        self.what = f"camera {spec}" if spec.isdigit() else f"stream {mask_url(spec)}"
        self._opener = opener or self._default_opener
        self._attempts = stream_options(spec, cfg)
        self._stopping = threading.Event()
        self.feed = self._open()
        first = self.feed.read()
        if first is None:
            self.feed.close()
            raise SourceError(f"{self.what} opened but delivered no frame within {cfg.read_timeout:g} s")
        self._first = first
        image = first[0]
        fps, known = _sane_fps(self.feed.fps, cfg.fallback_fps)
        self.info = VideoInfo((image.shape[1], image.shape[0]), fps, None, live=True, fps_known=known)
        try:
            check_first_size(self.what, self.info.size)
        except SourceError:
            self.feed.close()
            raise
        self.skipped = 0
        self.reconnects = 0
        self.gap_seconds = 0.0

    def stop(self) -> None:
        self._stopping.set()

    def _default_opener(self, spec: str) -> Feed:
        if spec.isdigit():
            capture = cv2.VideoCapture(int(spec))
            capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.cfg.read_timeout * 1000)
            return OpenCvFeed(capture, self.what)
        errors = []
        for options in self._attempts:
            try:
                feed = PyAvFeed(spec, options, self.cfg.open_timeout, self.cfg.read_timeout)
            except SourceError as exc:
                errors.append(f"{options['rtsp_transport']}: {exc}" if "rtsp_transport" in options else str(exc))
                continue
            if len(self._attempts) > 1:
                log.info("%s: RTSP over %s", self.what, options["rtsp_transport"])
                self._attempts = [options]  # reconnects use the transport that worked
            return feed
        raise SourceError(f"could not open {self.what} ({'; '.join(errors)})")

    def _open(self) -> Feed:
        """``open_timeout`` for each transport tried (FFmpeg's own timeout; the thread is the backstop)."""
        timeout = self.cfg.open_timeout * len(self._attempts)
        return _open_with_timeout(lambda: self._opener(self.spec), timeout, self.what)

    def _reopen(self) -> bool:
        """Reopen with backoff until it works, ``reconnect_attempts`` fail, or the source is stopped."""
        self.feed.close()
        delay = self.cfg.reconnect_backoff
        for attempt in range(1, self.cfg.reconnect_attempts + 1):
            if self._stopping.wait(delay):
                return False
            delay = min(delay * 2, self.cfg.reconnect_backoff_max)
            try:
                self.feed = self._open()
            except SourceError as exc:
                log.warning("reconnect %d/%d failed: %s", attempt, self.cfg.reconnect_attempts, exc)
                continue
            return True
        log.error("%s lost: gave up after %d reconnect attempts", self.what, self.cfg.reconnect_attempts)
        return False

    def __iter__(self) -> Iterator[Frame]:
        started = last_frame_at = time.perf_counter()
        index, item, lost = 0, self._first, False
        watch = SizeWatch(self.what, self.info.size)
        try:
            while not self._stopping.is_set():
                if item is not None:
                    image, source_time = item
                    now = time.perf_counter()
                    if lost:
                        gap = now - last_frame_at
                        self.reconnects += 1
                        self.gap_seconds += gap
                        log.warning("%s reconnected after a %.1f s gap", self.what, gap)
                        lost = False
                    last_frame_at = now
                    if watch.check(index, image):
                        yield Frame(index, now - started, now, image, source_time=source_time)
                    else:
                        self.skipped += 1
                    index += 1
                item = self.feed.read()
                if item is None:
                    log.warning("%s stopped delivering frames (last frame %.1f s ago); reconnecting", self.what,
                                time.perf_counter() - last_frame_at)
                    lost = True
                    if not self._reopen():
                        return
        finally:
            self.feed.close()


def is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def glob_folder(spec: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(spec).parts
    index = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    return Path(*parts[:index]) if index else Path(".")


def is_live(spec: str) -> bool:
    """A camera index or a stream URL: frames arrive in real time whether or not we read them."""
    return spec.isdigit() or spec.startswith(URL_SCHEMES)


def open_source(spec: str, cfg: SourceConfig) -> Source:
    """Pick the source kind from ``spec``: camera index, URL, folder or glob of images, or a video file."""
    quiet_opencv()
    if is_live(spec):
        return LiveSource(spec, cfg)
    path = Path(spec)
    if path.is_dir() or is_glob(spec):
        return ImageFolderSource(spec, cfg)
    if is_image(path):
        return ImageFolderSource(spec, cfg)
    if not path.exists():
        raise SourceError(f"source '{spec}' does not exist")
    if path.is_file() and not path.stat().st_mode & 0o444:
        raise SourceError(f"source '{spec}' is not readable")
    return VideoFileSource(path, cfg)
