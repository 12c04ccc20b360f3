"""The pipeline's config schema (loaded by the one loader, `core.config.load_config`) and the shipped configs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.config import ConfigError, load_config, validate
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
        validate(
            (self.queue_size >= 1, f"'source.queue_size' must be >= 1, got {self.queue_size}"),
            *((getattr(self, key) > 0, f"'source.{key}' must be > 0, got {getattr(self, key)}")
              for key in ("open_timeout", "read_timeout", "fallback_fps")),
            *((getattr(self, key) >= 0, f"'source.{key}' must be >= 0, got {getattr(self, key)}")
              for key in ("reconnect_attempts", "reconnect_backoff", "reconnect_backoff_max")),
        )


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
    1080p source is drawn and written at 1280x720, where labels still read well, with 44% of the pixels to draw
    and encode, CPU that a 2-core machine otherwise takes from the detector (docs/benchmarks.md, "Real time at
    HD"). Detections stay in source pixels whatever this is.
    """

    dir: str = "outputs"
    video: bool = True
    codec: VideoCodec = "auto"
    h264_options: dict[str, str] = field(default_factory=lambda: {"preset": "ultrafast", "crf": "23"})
    max_size: int = 1280
    benchmark_csv: str = "outputs/benchmarks.csv"
    log_every: float = 5.0

    def __post_init__(self) -> None:
        validate(
            (self.max_size == 0 or self.max_size >= 16,
             f"'output.max_size' must be 0 (the source's size) or >= 16, got {self.max_size}"),
            (self.log_every >= 0, f"'output.log_every' must be >= 0 (seconds), got {self.log_every}"),
        )


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
        validate(
            (self.max_clients >= 1, f"'serve.max_clients' must be >= 1, got {self.max_clients}"),
            (self.fps > 0, f"'serve.fps' must be > 0, got {self.fps}"),
            (1 <= self.quality <= 100, f"'serve.quality' must be in 1..100, got {self.quality}"),
            (self.history >= 1, f"'serve.history' must be >= 1 (seconds), got {self.history}"),
            (self.linger >= 0, f"'serve.linger' must be >= 0 (seconds), got {self.linger}"),
            (self.token is None or bool(self.token.strip()), "'serve.token' must not be empty"),
        )


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
        if self.model.interval not in (1, "auto") and not self.track.enabled:
            raise ConfigError("'model.interval' other than 1 or auto needs 'track.enabled' (the tracker fills the "
                              "frames the detector skips)")


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """``configs/default.yaml`` unless another file is given, with ``key=value`` overrides."""
    return load_config(PipelineConfig, path or DEFAULT_CONFIG, overrides)
