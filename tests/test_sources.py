"""Sources: lossless files and folders, live sources with reconnect, URL masking, bad sources."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.log import mask_url
from stream.config import SourceConfig
from stream.sources import (
    ImageFolderSource,
    LiveSource,
    OpenCvFeed,
    SourceError,
    VideoFileSource,
    open_source,
    source_name,
)
from tests.conftest import write_video


def test_video_file_yields_every_frame_in_order_with_source_fps_and_size(tmp_path):
    source = open_source(str(write_video(tmp_path / "a.avi", frames=15, size=(160, 120), fps=12.5)), SourceConfig())
    assert isinstance(source, VideoFileSource) and not source.info.live
    assert source.info.size == (160, 120) and source.info.fps == pytest.approx(12.5)
    frames = list(source)
    assert [f.index for f in frames] == list(range(15))
    assert frames[3].timestamp == pytest.approx(3 / 12.5)


def test_zero_frame_video_is_a_source_error(tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    with pytest.raises(SourceError, match="no frames|not a readable video"):
        open_source(str(path), SourceConfig())


def test_garbage_file_and_missing_file_are_source_errors(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError):
        open_source(str(junk), SourceConfig())
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "missing.mp4"), SourceConfig())


def test_image_folder_skips_and_counts_a_corrupt_image(tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"f{i}.jpg"), np.full((48, 64, 3), i * 40, np.uint8))
    (tmp_path / "f2.jpg").write_bytes(b"corrupt")
    source = open_source(str(tmp_path), SourceConfig())
    assert isinstance(source, ImageFolderSource)
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 3]
    assert source.skipped == 1


class FlakyCapture:
    """A fake cv2.VideoCapture: delivers ``good`` frames, then fails reads."""

    def __init__(self, good: int, opened: bool = True):
        self.good, self.opened, self.reads = good, opened, 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return self.opened

    def read(self):
        self.reads += 1
        if self.reads > self.good:
            return False, None
        return True, np.full((24, 32, 3), self.reads, np.uint8)

    def get(self, prop):
        return 0.0  # a camera that reports no FPS

    def release(self):
        pass


def test_live_source_reconnects_after_a_gap_and_falls_back_to_a_sane_fps():
    opened = []

    def opener(spec):
        opened.append(spec)
        return FlakyCapture(good=5 if len(opened) == 1 else 3, opened=len(opened) <= 2)

    cfg = SourceConfig(reconnect_attempts=2, reconnect_backoff=0.01, open_timeout=1.0, fallback_fps=25.0)
    source = LiveSource("rtsp://user:secret@cam.local/stream", cfg, opener=lambda spec: OpenCvFeed(opener(spec), spec))
    assert source.info.fps == 25.0 and source.info.size == (32, 24)
    started = time.perf_counter()
    frames = list(source)
    # 5 frames, a reconnect that gives 3 more, then 2 failed attempts end the stream
    assert len(frames) == 8 and source.reconnects == 1 and len(opened) == 4
    assert [f.index for f in frames] == list(range(len(frames)))
    assert time.perf_counter() - started < 3.0


def test_live_source_that_never_comes_back_ends_without_hanging():
    calls = []

    def opener(spec):
        calls.append(spec)
        return FlakyCapture(good=2, opened=len(calls) == 1)

    cfg = SourceConfig(reconnect_attempts=3, reconnect_backoff=0.01, open_timeout=0.5)
    source = LiveSource("0", cfg, opener=lambda spec: OpenCvFeed(opener(spec), spec))
    started = time.perf_counter()
    assert len(list(source)) == 2
    assert len(calls) == 1 + 3
    assert time.perf_counter() - started < 2.0


def test_live_source_open_timeout_is_a_source_error():
    def slow_opener(spec):
        time.sleep(2.0)
        return FlakyCapture(1)

    started = time.perf_counter()
    with pytest.raises(SourceError, match=r"could not open stream rtsp://\*\*\*@host/x within 0.6 s"):
        LiveSource("rtsp://admin:pw@host/x", SourceConfig(open_timeout=0.3), opener=lambda spec: OpenCvFeed(slow_opener(spec), spec))
    assert time.perf_counter() - started < 1.5


def test_credentials_are_masked_in_urls_and_names():
    assert mask_url("rtsp://admin:hunter2@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    assert "hunter2" not in source_name("rtsp://admin:hunter2@cam/live")
    assert source_name("0") == "cam0"
    assert source_name(str(Path("/x/dashcam clip.mp4"))) == "dashcam_clip"
