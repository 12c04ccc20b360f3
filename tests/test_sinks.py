"""The video sink: H.264 through PyAV timed like the source (constant rate for files, capture times for live
sources), the OpenCV codecs, and a source that comes back at another resolution."""
from __future__ import annotations

import av
import numpy as np
import pytest

from stream.config import OutputConfig, SourceConfig
from stream.sinks import SinkError, VideoSink, video_size
from stream.sources import LiveSource


def frames(n: int, size=(96, 64)):
    for i in range(n):
        yield np.full((size[1], size[0], 3), i * 20 % 255, np.uint8)


def probe(path) -> tuple[str, int, float, list[float]]:
    """Codec, frame count, duration (the container's and the track's must agree: players read either) and
    the frames' presentation times."""
    with av.open(str(path)) as video:
        stream = video.streams.video[0]
        times = [frame.time for frame in video.decode(stream)]
        duration = float(video.duration / av.time_base)
        if stream.duration is not None:
            assert float(stream.duration * stream.time_base) == pytest.approx(duration, abs=0.01)
        return stream.codec_context.name, len(times), duration, times


def test_a_file_source_keeps_its_fps_and_frame_count_in_h264(tmp_path):
    path = tmp_path / "file.mp4"
    with VideoSink(path, 25.0, (96, 64), OutputConfig()) as sink:
        for image in frames(20):
            sink.write_image(image, timestamp=123.0)  # ignored: a file's frame n sits at n / fps
    codec, count, duration, times = probe(path)
    assert (codec, count, sink.codec) == ("h264", 20, "libx264")
    assert duration == pytest.approx(20 / 25, abs=0.01)
    assert times[:3] == pytest.approx([0, 0.04, 0.08])


def test_a_live_source_places_frames_at_their_capture_times(tmp_path):
    """Dropped frames and a reconnect gap leave holes in the capture times; the video lasts as long as the run."""
    path = tmp_path / "live.mp4"
    stamps = [0.0, 0.033, 0.3, 0.3001, 2.5, 2.533]  # the fourth within a millisecond of the third
    with VideoSink(path, 30.0, (96, 64), OutputConfig(), live=True) as sink:
        for image, stamp in zip(frames(len(stamps)), stamps):
            sink.write_image(image, stamp)
    codec, count, duration, times = probe(path)
    assert (codec, count) == ("h264", len(stamps))
    assert times == pytest.approx([0.0, 0.033, 0.3, 0.301, 2.5, 2.533], abs=1e-3)
    assert duration == pytest.approx(2.533 + 1 / 30, abs=0.01)


@pytest.mark.parametrize("size", [(96, 64), (97, 63)])
def test_colours_survive_the_h264_round_trip(tmp_path, size):
    """Blue, green, red, white and mid grey blocks decode back within a few levels: channels in BGR order and
    the limited-range BT.601 conversion the decoder expects."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128)]
    image = np.zeros((size[1], size[0], 3), np.uint8)
    for i, colour in enumerate(colours):
        image[:, i * 16:(i + 1) * 16] = colour
    with VideoSink(tmp_path / "colours.mp4", 10.0, size, OutputConfig(h264_options={"crf": "0"})) as sink:
        for _ in range(3):
            sink.write_image(image)
    with av.open(str(tmp_path / "colours.mp4")) as video:
        decoded = next(video.decode(video.streams.video[0])).to_ndarray(format="bgr24")
    for i, colour in enumerate(colours):
        block = decoded[8:-8, i * 16 + 4:(i + 1) * 16 - 4].reshape(-1, 3).mean(axis=0)
        assert np.abs(block - colour).max() < 12, (colour, block)


def test_odd_sizes_are_written_at_the_nearest_even_size(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoSink(path, 10.0, (97, 63), OutputConfig()) as sink:
        for image in frames(3, (97, 63)):
            sink.write_image(image)
    with av.open(str(path)) as video:
        assert (video.streams.video[0].width, video.streams.video[0].height) == (96, 62)


@pytest.mark.parametrize("codec, fourcc", [("mp4v", "mp4v"), ("mjpg", "MJPG")])
def test_opencv_codecs_on_request(tmp_path, codec, fourcc):
    path = tmp_path / "clip.avi"
    with VideoSink(path, 10.0, (96, 64), OutputConfig(codec=codec)) as sink:
        for image in frames(4):
            sink.write_image(image)
    assert sink.codec == fourcc and probe(path)[1] == 4


def test_h264_that_cannot_be_written_is_a_sink_error(tmp_path):
    with pytest.raises(SinkError, match="cannot write H.264"):
        with VideoSink(tmp_path / "bad.mp4", 10.0, (96, 64), OutputConfig(codec="h264", h264_options={"crf": "x"})):
            pass


class ResizingFeed:
    """A camera that comes back at another resolution halfway through."""

    fps = 20.0

    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        if self.reads > 6:
            return None
        size = (32, 24) if self.reads <= 3 else (64, 48)
        return np.zeros((size[1], size[0], 3), np.uint8), self.reads / 20

    def close(self):
        pass


def test_a_source_that_returns_at_another_size_keeps_it_with_one_warning_naming_the_frame(caplog):
    feed = ResizingFeed()
    source = LiveSource("0", SourceConfig(reconnect_attempts=0), opener=lambda spec: feed)
    got = list(source)
    assert [f.size for f in got] == [(32, 24)] * 3 + [(64, 48)] * 3  # boxes stay in the pixels the source gave
    assert [f.source_time for f in got] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    assert caplog.text.count("frame 3 is 64x48, the frames before it 32x24") == 1
    assert caplog.text.count("is 64x48") == 1


@pytest.mark.parametrize(("size", "max_size", "expected"), [
    ((1920, 1080), 1280, (1280, 720)), ((640, 360), 1280, (640, 360)), ((1080, 1920), 1280, (720, 1280)),
    ((1920, 1080), 0, (1920, 1080)), ((3840, 2160), 1280, (1280, 720)), ((1361, 801), 1000, (1000, 588)),
])
def test_the_annotated_video_size_keeps_the_aspect_within_max_size_and_is_even(size, max_size, expected):
    assert video_size(size, max_size) == expected


def test_a_bad_max_size_is_a_config_error():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="output.max_size"):
        OutputConfig(max_size=-1)
