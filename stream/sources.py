"""Frame sources: video files and image folders (lossless), cameras and URLs (live, reconnecting).

Every source is a `Source`: an iterator of `Frame`s with a `VideoInfo` (size, FPS, frame count, live), a count
of ``skipped`` (corrupt) frames and ``stop()``. Open failures raise `SourceError` before the pipeline starts.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2

from core.images import is_image, read_bgr
from core.log import mask_url
from stream.config import SourceConfig
from stream.frames import Frame

log = logging.getLogger(__name__)
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://")
MAX_CONSECUTIVE_BAD = 25


class SourceError(RuntimeError):
    """A source that cannot be opened or read; one line, credentials masked."""


@dataclass(frozen=True)
class VideoInfo:
    """What a source knows before its first frame.

    size: (width, height) in pixels; fps: the source's rate (the fallback when it reports none);
    frame_count: None when unknown or endless; live: frames arrive in real time whether or not we keep up;
    fps_known: False when ``fps`` is ``source.fallback_fps`` because the source reports none.
    """

    size: tuple[int, int]
    fps: float
    frame_count: int | None
    live: bool
    fps_known: bool = True


class Source(Protocol):
    """An opened source: iterate it for `Frame`s; ``stop()`` ends the iteration soon, from any thread."""

    info: VideoInfo
    skipped: int

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
    """A short folder-safe name for outputs: file stem, ``camera0``, or the URL's host and path."""
    if spec.isdigit():
        return f"camera{spec}"
    if spec.startswith(URL_SCHEMES):
        rest = mask_url(spec).split("://", 1)[1].replace("***@", "")
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", rest).strip("_")[:60] or "stream"
    path = Path(spec.rstrip("/"))
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.suffix else path.name) or "images"


def _read_fps(capture: cv2.VideoCapture, fallback: float) -> tuple[float, bool]:
    """The capture's FPS and True, or ``fallback`` and False when it reports none (or an absurd one)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return (fps, True) if fps and 1.0 <= fps <= 240.0 else (fallback, False)


class VideoFileSource:
    """A video file, every frame in order; corrupt frames in the middle are skipped and counted."""

    def __init__(self, path: Path, cfg: SourceConfig):
        if not path.is_file():
            raise SourceError(f"video file '{path}' does not exist")
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise SourceError(f"'{path}' is not a readable video")
        fps, known = _read_fps(self.capture, cfg.fallback_fps)
        frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        ok, first = self.capture.read()
        if not ok or first is None:
            self.capture.release()
            raise SourceError(f"video '{path}' has no frames")
        self._first = first
        self.info = VideoInfo((first.shape[1], first.shape[0]), fps, frame_count, live=False, fps_known=known)
        self.skipped = 0
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def __iter__(self) -> Iterator[Frame]:
        index, image, failed = 0, self._first, 0
        (width, height), fps, frame_count = self.info.size, self.info.fps, self.info.frame_count
        try:
            while not self._stopping.is_set():
                if image is not None and image.shape[:2] == (height, width):
                    yield Frame(index, index / fps, time.perf_counter(), image)
                elif image is not None:
                    self.skipped += 1
                    log.warning("frame %d of %s has size %s, expected %s: skipped", index, self.path,
                                image.shape[1::-1], self.info.size)
                index += 1
                ok, image = self.capture.read()
                if ok and failed:  # failures followed by a good frame were corrupt frames, not the end
                    self.skipped += failed
                    log.warning("frames %d-%d of %s could not be decoded: skipped", index - failed, index - 1,
                                self.path)
                    failed = 0
                if ok:
                    continue
                if frame_count is None or index >= frame_count or failed >= MAX_CONSECUTIVE_BAD:
                    return
                failed += 1
                image = None
        finally:
            self.capture.release()


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
                              fps_known=False)
        self.skipped = 0
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            if self._stopping.is_set():
                return
            image = read_bgr(path)
            if image is None:
                self.skipped += 1
                log.warning("image %s is unreadable: skipped", path)
                continue
            if (image.shape[1], image.shape[0]) != self.info.size:
                image = cv2.resize(image, self.info.size)
            yield Frame(index, index / self.info.fps, time.perf_counter(), image)


def _open_with_timeout(opener: Callable[[], cv2.VideoCapture], timeout: float, what: str) -> cv2.VideoCapture:
    """Open in a helper thread so a URL that never answers can't hang the caller."""
    result: list[cv2.VideoCapture] = []
    thread = threading.Thread(target=lambda: result.append(opener()), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or not result or not result[0].isOpened():
        raise SourceError(f"could not open {what} within {timeout:g} s")
    return result[0]


class LiveSource:
    """A camera index or stream URL. A read failure reopens with exponential backoff; the gap is logged."""

    def __init__(self, spec: str, cfg: SourceConfig, opener: Callable[[str], cv2.VideoCapture] | None = None):
        self.spec, self.cfg = spec, cfg
        self.what = f"camera {spec}" if spec.isdigit() else f"stream {mask_url(spec)}"
        self._opener = opener or self._default_opener
        self._stopping = threading.Event()
        self.capture = self._open()
        ok, first = self.capture.read()
        if not ok or first is None:
            raise SourceError(f"{self.what} opened but delivered no frame")
        self._first = first
        fps, known = _read_fps(self.capture, cfg.fallback_fps)
        self.info = VideoInfo((first.shape[1], first.shape[0]), fps, None, live=True, fps_known=known)
        self.skipped = 0
        self.reconnects = 0

    def stop(self) -> None:
        self._stopping.set()

    def _default_opener(self, spec: str) -> cv2.VideoCapture:
        if spec.isdigit():
            return cv2.VideoCapture(int(spec))
        timeout_ms = int(self.cfg.open_timeout * 1000)
        return cv2.VideoCapture(spec, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])

    def _open(self) -> cv2.VideoCapture:
        return _open_with_timeout(lambda: self._opener(self.spec), self.cfg.open_timeout, self.what)

    def _reconnect(self) -> bool:
        self.capture.release()
        lost = time.perf_counter()
        for attempt in range(1, self.cfg.reconnect_attempts + 1):
            if self._stopping.wait(self.cfg.reconnect_backoff * 2 ** (attempt - 1)):
                return False
            try:
                self.capture = self._open()
            except SourceError as exc:
                log.warning("reconnect %d/%d failed: %s", attempt, self.cfg.reconnect_attempts, exc)
                continue
            self.reconnects += 1
            log.warning("%s reconnected after a %.1f s gap (attempt %d)", self.what, time.perf_counter() - lost, attempt)
            return True
        log.error("%s lost: gave up after %d reconnect attempts", self.what, self.cfg.reconnect_attempts)
        return False

    def __iter__(self) -> Iterator[Frame]:
        started = time.perf_counter()
        index, image = 0, self._first
        try:
            while not self._stopping.is_set():
                if image is not None:
                    now = time.perf_counter()
                    yield Frame(index, now - started, now, image)
                    index += 1
                ok, image = self.capture.read()
                if not ok:
                    log.warning("%s stopped delivering frames", self.what)
                    if not self._reconnect():
                        return
                    image = None
        finally:
            self.capture.release()


def open_source(spec: str, cfg: SourceConfig) -> Source:
    """Pick the source kind from ``spec``: camera index, URL, folder or glob of images, or a video file."""
    quiet_opencv()
    if spec.isdigit() or spec.startswith(URL_SCHEMES):
        return LiveSource(spec, cfg)
    path = Path(spec)
    if path.is_dir() or any(c in spec for c in "*?["):
        return ImageFolderSource(spec, cfg)
    if is_image(path):
        return ImageFolderSource(spec, cfg)
    if not path.exists():
        raise SourceError(f"source '{spec}' does not exist")
    if path.is_file() and not path.stat().st_mode & 0o444:
        raise SourceError(f"source '{spec}' is not readable")
    return VideoFileSource(path, cfg)
