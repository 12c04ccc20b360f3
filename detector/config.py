"""The detector's config sections: which model runs where (`ModelConfig`, `OnnxConfig`) and the NMS stage.

Loaded by the one config loader, `core.config.load_config`, as sections of a pipeline or command config. The
model names and defaults live here, not in `detector.models`, so that a config loads without importing torch.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from core.config import validate
from core.labels import DRIVING_CLASSES, LABELS
from detector.calibration import DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_FRAMES
from detector.datasets import DataSource

BUNDLED_MODEL = "driving_mobilenet_v2_fpn"
LITE_MODEL = "driving_mobilenet_v2_lite"  # the default: half the FLOPs, distilled from BUNDLED_MODEL (MODEL_CARD)
DRIVING_MODELS = (BUNDLED_MODEL, LITE_MODEL)  # ours: the driving label set, the input-size policy, weights bundled
# torchvision's Faster R-CNN builders offered by name (`detector.models.TORCHVISION_BUILDERS`)
TORCHVISION_MODELS = ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                      "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2")
MODEL_NAMES: tuple[str, ...] = (*DRIVING_MODELS, *TORCHVISION_MODELS)

# RPN proposals kept at test time (pre- and post-NMS), the one default for configs, builders and the exporter:
# the tuner's choice for cars and road signs on the bundled model (docs/benchmarks.md "Top-N tuned for FPS").
DEFAULT_TOP_N = 300

# Candidate floor inside the model. Low on purpose: AP ranks every candidate, and a 0.05 floor cut the bundled
# model's car recall on the held-out clip (MODEL_CARD); what is drawn is decided by `nms.score_thresh`.
DEFAULT_SCORE_THRESH = 0.01


@dataclasses.dataclass
class OnnxConfig:
    """ONNX Runtime session settings (used when ``model.backend`` is ``onnx``).

    ``providers``: tried in order (``backend=auto`` on CUDA asks for TensorRT, then CUDA); ``intra_op_threads`` 0:
    ``model.threads``, and ONNX Runtime's default when that is 0 too. TensorRT runs fp16 when ``model.precision``
    is fp16 (auto on CUDA); its engines are cached in ``trt_cache_dir``.
    """

    providers: list[str] = dataclasses.field(default_factory=lambda: ["CPUExecutionProvider"])
    intra_op_threads: int = 0
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    trt_cache_dir: str = "outputs/trt-cache"

    def __post_init__(self) -> None:
        validate((self.intra_op_threads >= 0, f"'model.onnx.intra_op_threads' must be >= 0 (0: model.threads), "
                                               f"got {self.intra_op_threads}"))


@dataclasses.dataclass
class OpenVinoConfig:
    """OpenVINO settings (used when ``model.backend`` is ``openvino``).

    ``hint`` throughput: ``model.workers`` inference streams, one per pipeline worker, each running a frame;
    latency: one stream using every core for one frame at a time.
    """

    hint: Literal["throughput", "latency"] = "throughput"


@dataclasses.dataclass
class ModelConfig:
    """Which detector runs, with which weights, on which backend, device and precision.

    ``backend`` auto: on CUDA ONNX Runtime (TensorRT, then CUDA) else torch; on CPU OpenVINO when installed, else
    ONNX Runtime, else torch (`detector.runtime.choose_runtime`, which logs what it chose and why).
    ``precision`` auto: of the precisions measured to cost <= 1 point of AP@0.5 (docs/benchmarks.md, "Real-time
    by default"), the one that runs fastest on this CPU, timed on first use and cached (`detector.precision_timing`).
    ``onnx_path`` empty: the graph is exported on first use into ``cache_dir`` (empty: the user's cache folder).
    ``workers``: inference workers in the pipeline, each on its own frame (results keep frame order); 0 (auto):
    one per usable core on a CPU, two on CUDA (`detector.runtime.pick_workers`);
    ``threads``: intra-op threads per worker (0: one with auto workers, else the runtime's default).
    ``interval``: the detector runs on every k-th frame from ``interval_phase`` on and the tracker fills the
    others; ``auto`` (the default): live sources raise k up to ``max_interval`` when inference cannot keep up,
    video files every 2nd frame, the frames between filled from the detector frames on both sides
    (``track.fill``), or every frame where they cannot be (`stream.interval.FILE_INTERVAL`); image folders
    every image.
    ``full_size_every``: on video frames the input-size policy would enlarge well beyond its 320 base (above about
    470 px short side: 720p, 1080p), only every n-th detector frame runs at the policy's size; the others run at
    the base size (`detector.input_size.coarse_size`), where vehicles and people are found as well, and the
    tracker carries the small classes (lights and signs, `core.labels.SMALL_CLASSES`) and boxes too small for the
    base size (far cars) on them by optical flow, as on the frames the detector skips. 1: every detector frame at
    the policy's size. Stills (the evaluate command) always run at the policy's size.
    ``calibration``: the datasets whose frames (``calibration_frames`` of them) set an int8 graph's activation
    ranges (`detector.calibration`); the bundled model ships the ranges the default set gives, so only another
    graph or set needs the frames, and when they are missing int8 is not offered.
    """

    name: str = LITE_MODEL
    weights: str = "default"
    top_n: int = DEFAULT_TOP_N
    min_size: int = 0
    max_size: int = 0
    score_thresh: float = DEFAULT_SCORE_THRESH
    backend: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "auto"
    onnx_path: str = ""
    cache_dir: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = 0
    threads: int = 0
    interval: int | Literal["auto"] = "auto"
    max_interval: int = 6
    interval_phase: int = 0
    full_size_every: int = 6
    calibration: list[DataSource] = dataclasses.field(default_factory=lambda: list(DEFAULT_CALIBRATION))
    calibration_frames: int = DEFAULT_CALIBRATION_FRAMES
    onnx: OnnxConfig = dataclasses.field(default_factory=OnnxConfig)
    openvino: OpenVinoConfig = dataclasses.field(default_factory=OpenVinoConfig)

    def __post_init__(self) -> None:
        validate(
            (self.name in MODEL_NAMES,
             f"'model.name' = '{self.name}' is not valid; valid values: {', '.join(MODEL_NAMES)}"),
            (self.top_n >= 1, f"'model.top_n' must be >= 1, got {self.top_n}"),
            (self.min_size >= 0, f"'model.min_size' must be >= 0 (0: the model's default), got {self.min_size}"),
            (self.max_size >= 0, f"'model.max_size' must be >= 0 (0: the model's default), got {self.max_size}"),
            (0.0 <= self.score_thresh < 1.0, f"'model.score_thresh' must be in [0, 1), got {self.score_thresh}"),
            (self.interval == "auto" or self.interval >= 1,
             f"'model.interval' must be >= 1 or auto, got {self.interval}"),
            (self.max_interval >= 1, f"'model.max_interval' must be >= 1, got {self.max_interval}"),
            (self.interval_phase >= 0, f"'model.interval_phase' must be >= 0, got {self.interval_phase}"),
            (self.full_size_every >= 1, f"'model.full_size_every' must be >= 1, got {self.full_size_every}"),
            (self.calibration_frames >= 1, f"'model.calibration_frames' must be >= 1, got {self.calibration_frames}"),
            (self.workers >= 0, f"'model.workers' must be >= 0 (0: auto), got {self.workers}"),
            (self.threads >= 0, f"'model.threads' must be >= 0 (0: auto), got {self.threads}"),
        )


@dataclasses.dataclass
class NmsConfig:
    """The class-wise NMS stage: IoU, score thresholds (global and per class) and the classes kept.

    ``agnostic_iou``: after the class-wise NMS, the pipeline drops a box that overlaps a higher-scored box of
    another class at least this much (one object, one box on screen and in the tracker; 1 turns it off), and at
    ``iou`` already when both classes are ones an object can be mistaken between (car, truck and bus; motorcycle
    and bicycle; the road signs), as within one class; the evaluate command scores the class-wise output without
    it.
    """

    iou: float = 0.5
    score_thresh: float = 0.4
    class_thresh: dict[str, float] = dataclasses.field(default_factory=dict)
    classes: list[str] = dataclasses.field(default_factory=lambda: list(DRIVING_CLASSES))
    agnostic_iou: float = 0.8

    def __post_init__(self) -> None:
        unknown = [name for name in dict.fromkeys([*self.classes, *self.class_thresh]) if name not in LABELS[1:]]
        validate(
            (0.0 < self.iou <= 1.0, f"'nms.iou' must be in (0, 1], got {self.iou}"),
            (0.0 < self.agnostic_iou <= 1.0, f"'nms.agnostic_iou' must be in (0, 1], got {self.agnostic_iou}"),
            (0.0 <= self.score_thresh <= 1.0, f"'nms.score_thresh' must be in [0, 1], got {self.score_thresh}"),
            *((0.0 <= thresh <= 1.0, f"'nms.class_thresh.{name}' must be in [0, 1], got {thresh}")
              for name, thresh in self.class_thresh.items()),
            (not unknown, f"'nms' names unknown class{'es' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}; valid classes: {', '.join(LABELS[1:])}"),
        )



# The ONNX export (`detector.export`): the opsets it can write and the precisions it offers
DEFAULT_OPSET = 17
OPSETS = range(11, 21)  # 11: torchvision's NMS and RoiAlign symbolics; 20: the TorchScript exporter's last
EXPORT_PRECISIONS = ("fp32", "int8")


@dataclasses.dataclass
class ExportConfig:
    """What ``driving-detect export`` reads: the model section alone, from its flags then ``model.*`` overrides."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
