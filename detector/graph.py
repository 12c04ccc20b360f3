"""The exported graph's contract, shared by the runtimes that run it (ONNX Runtime, OpenVINO) and the exporter
that writes it: input and output names, the project metadata baked into the file, and the frame it accepts.

Kept apart from every runtime, so OpenVINO and the exporter read a graph's metadata without importing
ONNX Runtime.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from core.labels import LABEL_IDS, LABELS
from detector.config import ModelConfig
from detector.input_size import POLICY_NAME, fixed_size, policy_size
from detector.models import DEFAULT_SIZES, uses_size_policy
from detector.preprocess import fit_frame

INPUT_NAME = "frame"
OUTPUT_NAMES = ("boxes", "scores", "labels")


class OnnxModelError(ValueError):
    """An ONNX file that can't be used here: missing, corrupt, not from `detector.export`, or rejecting the input."""


@dataclass(frozen=True)
class OnnxMetadata:
    """What `detector.export` bakes into the graph, stored as JSON values in the file's ``metadata_props``.

    labels[i] is the driving name of model class i (None: not a driving class); class_map[i] its driving id (-1).
    ``precision``: ``fp32``, or ``int8`` for a statically quantized graph (`detector.export.quantize_int8`)
    (optional key);
    ``size_policy``: `detector.input_size.POLICY_NAME` when frames are sized by that policy, else ``fixed``
    (optional key); ``resize``: ``host`` when the runtime resizes each frame to `input_size` before the graph
    (`detector.preprocess.fit_frame`), ``graph`` when the graph takes the frame at its own size and resizes it
    (files exported before 2026-12-04; optional key).
    """

    model_name: str
    top_n: int
    min_size: int
    max_size: int
    score_thresh: float
    labels: list[str | None]
    class_map: list[int]
    weights: str
    weights_sha256: str
    precision: str = "fp32"
    size_policy: str = "fixed"
    resize: str = "graph"

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the graph's model sees for a ``width`` x ``height`` frame."""
        if self.size_policy == POLICY_NAME:
            return policy_size(width, height)
        return fixed_size(width, height, self.min_size, self.max_size)

    def fit(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the graph takes for ``frame_bgr``, and the (4,) factors back to its pixels (`fit_frame`)."""
        if self.resize == "graph":
            return frame_bgr, np.ones(4, np.float32)
        return fit_frame(frame_bgr, self.input_size)

    def to_props(self) -> dict[str, str]:
        return {key: json.dumps(value) for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str) -> OnnxMetadata:
        """Parse and check the metadata; anything missing or inconsistent is an `OnnxModelError`."""
        names = [f.name for f in dataclasses.fields(cls) if f.name in props]
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in props and f.default is dataclasses.MISSING]
        if missing:
            raise OnnxModelError(
                f"'{source}' lacks this project's metadata ({', '.join(missing)}); "
                "export it with driving-detect export"
            )
        try:
            meta = cls(**{name: json.loads(props[name]) for name in names})
            meta.check_labels(source)
        except (json.JSONDecodeError, TypeError) as exc:
            raise OnnxModelError(f"'{source}' has unreadable metadata ({first_line(exc)})") from None
        return meta

    def check_labels(self, source: str) -> None:
        """The stored names and ids must agree with this project's label map (`core.labels`)."""
        if len(self.labels) != len(self.class_map):
            raise OnnxModelError(f"'{source}': {len(self.labels)} label names but {len(self.class_map)} class ids")
        for index, (name, driving_id) in enumerate(zip(self.labels, self.class_map)):
            expected = -1 if name is None else LABEL_IDS.get(name)
            if expected != driving_id:
                raise OnnxModelError(
                    f"'{source}': model class {index} is {name!r} with driving id {driving_id}, which does not match "
                    f"this project's label map ({', '.join(LABELS[1:])})"
                )

    def check_config(self, cfg: ModelConfig, source: str) -> None:
        """The config must describe the graph: top-N, sizes and score threshold are baked in at export."""
        default_min, default_max = DEFAULT_SIZES[cfg.name]
        wanted = {
            "name": (self.model_name, cfg.name),
            "top_n": (self.top_n, cfg.top_n),
            "min_size": (self.min_size, cfg.min_size or default_min),
            "max_size": (self.max_size, cfg.max_size or default_max),
            "score_thresh": (self.score_thresh, cfg.score_thresh),
            "size_policy": (self.size_policy, POLICY_NAME if uses_size_policy(cfg.name, cfg.min_size) else "fixed"),
        }
        differ = [
            f"size_policy {exported} vs {configured} (set by model.min_size={cfg.min_size})" if key == "size_policy"
            else f"{key} {exported} vs model.{key}={configured}"
            for key, (exported, configured) in wanted.items()
            if exported != configured and not (key == "score_thresh" and math.isclose(exported, configured))
        ]
        if differ:
            raise OnnxModelError(
                f"'{source}' was exported with other settings than the config ({'; '.join(differ)}); "
                "set those keys or re-export with driving-detect export"
            )


def read_metadata(path: Path) -> OnnxMetadata:
    """The project metadata of an exported file, read without starting a session (TensorRT builds are slow)."""
    if not path.is_file():
        raise OnnxModelError(f"ONNX model '{path}' does not exist; create it with driving-detect export")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise OnnxModelError(f"'{path}' is not a readable ONNX model ({type(exc).__name__})") from None
    if not proto.graph.node:
        raise OnnxModelError(f"'{path}' is not a readable ONNX model (empty graph)")
    return OnnxMetadata.from_props({p.key: p.value for p in proto.metadata_props}, str(path))


def check_frame(frame: np.ndarray) -> None:
    """The graph's input is fixed at export: a non-empty uint8 (H, W, 3) array."""
    shape_ok = isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.size > 0
    if shape_ok and frame.dtype == np.uint8:
        return
    kind = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
    raise OnnxModelError(f"the ONNX model takes a non-empty uint8 BGR frame of shape (H, W, 3); got a {kind}")


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
