"""The pipeline's config schema (loaded by the one loader, `core.config.load_config`) and the shipped configs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.config import ConfigError, load_config
from detector.config import ModelConfig, NmsConfig
from tracking.config import TrackConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


@dataclass
class SourceConfig:
    """Capture: lossless for files, drop-oldest (``latest``) for live sources unless overridden.

    Stream URLs are read through FFmpeg (PyAV): ``rtsp_transport`` ``auto`` tries TCP, then UDP (cameras and
    servers differ in which they serve); ``ffmpeg_options`` go to FFmpeg's demuxer as they are (e.g.
    ``rtsp_flags: prefer_tcp``, ``fflags: nobuffer``). ``read_timeout`` bounds how long a silent live source goes
    unnoticed; reconnects back off from ``reconnect_backoff`` doubling up to ``reconnect_backoff_max`` seconds.
    """

    policy: Literal["auto", "lossless", "latest"] = "auto"
    queue_size: int = 4
    rtsp_transport: Literal["auto", "tcp", "udp"] = "auto"
    ffmpeg_options: dict[str, str] = field(default_factory=dict)
    read_timeout: float = 3.0
    reconnect_attempts: int = 30
    reconnect_backoff: float = 0.5
    reconnect_backoff_max: float = 1.0
    open_timeout: float = 5.0
    fallback_fps: float = 30.0

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"'source.queue_size' must be >= 1, got {self.queue_size}")
        if self.open_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("'source.open_timeout' and 'source.read_timeout' must be > 0")
        if self.reconnect_backoff < 0 or self.reconnect_backoff_max < 0 or self.reconnect_attempts < 0:
            raise ConfigError("reconnect settings ('source.reconnect_*') must be >= 0")


VideoCodec = Literal["auto", "h264", "mp4v", "mjpg"]


@dataclass
class OutputConfig:
    """Where results go: annotated video, detections JSONL, benchmark record and the shared CSV log.

    ``codec`` ``auto`` is H.264 through PyAV (browser-playable MP4; NVENC when a CUDA GPU is present, else x264
    with ``h264_options``), falling back to OpenCV's MPEG-4 Part 2 writer when PyAV cannot encode. x264's
    ``ultrafast`` preset: on a 2-core CPU ``veryfast`` took 11 ms of CPU a 640x360 frame (36 ms at 720p) from the
    detector, ``ultrafast`` 3.7 (13), for files about 2.4x larger at the same crf (docs/benchmarks.md, "Real-time by
    default").
    ``max_size``: the annotated video's long side at most, in pixels (0: the source's size). 1280 by default: a
    1080p source is drawn and written at 1280x720, where labels still read well, for about half of x264's and the
    overlay's CPU at 1080p, which on a 2-core CPU is time taken from the detector (docs/benchmarks.md, "Real time at
    HD").
    Detections stay in source pixels whatever this is.
    """

    dir: str = "outputs"
    video: bool = True
    codec: VideoCodec = "auto"
    h264_options: dict[str, str] = field(default_factory=lambda: {"preset": "ultrafast", "crf": "23"})
    max_size: int = 1280
    benchmark_csv: str = "outputs/benchmarks.csv"
    log_every: float = 5.0

    def __post_init__(self) -> None:
        if self.max_size < 0 or 0 < self.max_size < 16:
            raise ConfigError(f"'output.max_size' must be 0 (the source's size) or >= 16, got {self.max_size}")


HudCorner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


@dataclass
class RenderConfig:
    """Overlay: boxes with label and score (tags placed so none covers another), and the HUD (FPS, per-stage ms,
    dropped frames) in ``hud_corner``."""

    hud: bool = True
    labels: bool = True
    hud_corner: HudCorner = "top-left"


@dataclass
class ServeConfig:
    """The live web view (``--serve``): who may watch, how many at once, and what the MJPEG stream may cost.

    token: required on every request when set ("auto": generate one and log it once); needed for a non-loopback
    bind; written to records as ``***``. fps / quality: the MJPEG stream's rate cap and JPEG quality (frames are
    encoded only while a viewer is connected). history: seconds of FPS / latency kept for the dashboard charts.
    linger: seconds the final numbers stay served after a run that ended by itself (Ctrl-C ends the wait).
    """

    token: str | None = field(default=None, metadata={"secret": True})
    max_clients: int = 4
    fps: float = 10.0
    quality: int = 80
    history: float = 300.0
    linger: float = 2.0

    def __post_init__(self) -> None:
        if self.max_clients < 1 or self.fps <= 0 or not 1 <= self.quality <= 100:
            raise ConfigError("'serve.max_clients' must be >= 1, 'serve.fps' > 0 and 'serve.quality' in 1..100")
        if self.history < 1 or self.linger < 0:
            raise ConfigError("'serve.history' must be >= 1 and 'serve.linger' >= 0")
        if self.token is not None and not self.token.strip():
            raise ConfigError("'serve.token' must not be empty")


@dataclass
class PipelineConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    nms: NmsConfig = field(default_factory=NmsConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def __post_init__(self) -> None:
        if self.model.interval != 1 and not self.track.enabled:
            raise ConfigError("'model.interval' other than 1 needs 'track.enabled' (the tracker fills the frames "
                              "the detector skips)")


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """``configs/default.yaml`` unless another file is given, with ``key=value`` overrides."""
    return load_config(PipelineConfig, path or DEFAULT_CONFIG, overrides)
