"""Export a detector to ONNX for `detector.backend_onnx`: a camera frame in, driving-ready boxes out.

    driving-detect export --model NAME --weights W --top-n N --out model.onnx
        [--min-size S --max-size S --opset K --precision fp32|int8 [--calibration SPEC ... --calibration-frames N]]

Input: the frame resized on the host to the size the model sees (`detector.preprocess.fit_frame`, metadata
``resize: host``), uint8 BGR (H, W, 3), batch 1, dynamic H and W. BGR->RGB, HWC->CHW and /255 run inside the graph
with the same ops TorchBackend runs on its device, so pre- and postprocessing are the same code path and the
runtime uploads a quarter of a float frame's bytes. Then the model's normalisation, RPN, box head and
postprocessing; outputs are boxes (N, 4) in the pixels of the input (the backend maps them back to the frame),
scores (N,) and labels (N,) as model class indices, which the class map in the metadata turns into driving ids.

Exporter: the TorchScript-based one (``dynamo=False``), as torchvision tests its detection models with it; the
default dynamo exporter needs onnxscript, which is not a dependency. Opset 17: RoiAlign carries its coordinate
mode from 16 on (``output_half_pixel`` = torchvision's aligned=False) and HardSwish is native from 14.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import FrozenBatchNorm2d, poolers

from core.labels import LABELS
from detector.graph import INPUT_NAME, OUTPUT_NAMES, OnnxMetadata
from detector.calibration import CalibrationError
from detector.config import DEFAULT_OPSET
from detector.input_size import POLICY_NAME, presized
from detector.models import DEFAULT_SCORE_THRESH, LITE_MODEL
from detector.preprocess import to_model_input
from detector.weights import load_model

# Bump when the graph this module writes changes: cached exports (`detector.export_cache`) are keyed by it.
EXPORTER_VERSION = 7  # 7: the host resizes frames (``resize: host``); 6 resized inside the graph
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
# Left fp32, as post-training quantization usually leaves a network's ends: the first convolution and inverted
# residual (quantized, they cost the stage-2 weights 3.4 points of car AP@0.5 on pseudo/val.json: 0.563 against
# 0.597, fp32 0.605) and the layers that output scores and box deltas (a few channels each: no measurable time).
# The two stride-4 blocks too (2026-12-04): quantized, they cost people 2.5 points on Penn-Fudan photos and 4.1 on
# 3.3:1 dashcam crops that calibration never saw; fp32, every class of every val set is within 1 point of the fp32
# graph, for about 12% more time a frame (docs/benchmarks.md, "int8 on footage it was not calibrated on").
FP32_NODES = ("/model/backbone/body/body.0/", "/model/backbone/body/body.1/", "/model/backbone/body/body.2/",
              "/model/backbone/body/body.3/", "/model/rpn/head/cls_logits", "/model/rpn/head/bbox_pred",
              "/model/roi_heads/box_predictor/")
# The light model's depthwise halves of its separable FPN (one per level, strides 8, 16, 32) and RPN convolutions
# too: quantized with their pointwise halves, they cost the rank-1 model 5 points of car AP@0.5 on pseudo val (0.599
# against fp32's 0.649) and 6 of Penn-Fudan people (2026-12-04). The pointwise 1x1s, nine tenths of those layers'
# FLOPs, quantize well: with only the depthwise halves fp32, every val set's mAP@0.5 is within 0.4 of the fp32
# graph, and at 1296x729 the FPN and RPN took 25-26 and 7-9 ms a frame instead of 34-35 and 13-14 (2026-12-05,
# docs/MODEL_CARD.md). The bundled model's dense convolutions there quantize well and stay int8. The light model's
# thin 1x1 before RoIAlign stays fp32: it reads the FPN outputs the RPN reads, which quantized would reach the RPN
# quantized as well (and it is 1% of the FLOPs).
LITE_FP32_NODES = FP32_NODES + tuple(f"/model/backbone/fpn/layer_blocks.{i}/layer_blocks.{i}.0/" for i in range(3)) + (
    "/model/rpn/head/conv/conv.0/conv.0.0", "/model/roi_heads/box_roi_pool/thin")


def fp32_nodes(name: str) -> tuple[str, ...]:
    """The node name prefixes model ``name``'s int8 graph leaves in fp32."""
    return LITE_FP32_NODES if name == LITE_MODEL else FP32_NODES


class FrameDetector(nn.Module):
    """The detector with the one preprocessing step (`detector.preprocess`) in front: uint8 BGR (H, W, 3), already at
    the size the model sees -> boxes, scores, labels. ``model``'s transform becomes a `PresizedTransform` (in place)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = presized(model)

    def forward(self, frame_bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        output = self.model([to_model_input(frame_bgr)])[0]
        return output["boxes"], output["scores"], output["labels"]


def gather_merge_levels(levels: torch.Tensor, per_level: list[torch.Tensor]) -> torch.Tensor:
    """RoIs pooled level by level (K_l, C, P, P) back in their input order (N, C, P, P), by one row gather.

    Replaces torchvision's ONNX merge, which scatters with an index per element: measured 15% of the
    320 model's ONNX Runtime CPU time; a gather of whole rows is the same result for a fraction of it.
    """
    order = torch.cat([torch.where(levels == level)[0] for level in range(len(per_level))])
    return torch.cat(per_level)[order.argsort()]


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each frozen batch norm folded into the convolution before it (same outputs).

    The traced graph otherwise keeps every norm as a Mul and an Add after a bias-free convolution: extra ops in
    fp32, and in int8 each convolution's output would be quantized per tensor *before* its per-channel norm scale,
    which measured car AP 0.23 instead of 0.6. ``fuse_conv_bn_eval`` reads what `FrozenBatchNorm2d` holds.
    """
    model = copy.deepcopy(model)
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, (FrozenBatchNorm2d, nn.BatchNorm2d)):
                module[i], module[i + 1] = fuse_conv_bn_eval(conv.eval(), norm), nn.Identity()
    return model


def state_sha256(model: nn.Module) -> str:
    """sha256 over parameter names and values as loaded: identifies the weights whatever their source."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def describe(model: nn.Module, class_map: np.ndarray, name: str, weights: str) -> OnnxMetadata:
    """The metadata of ``model`` as built: its top-N, sizes and score threshold are what the graph bakes in."""
    return OnnxMetadata(
        model_name=name,
        top_n=int(model.rpn._post_nms_top_n["testing"]),
        min_size=int(model.transform.min_size[-1]),
        max_size=int(model.transform.max_size),
        score_thresh=float(model.roi_heads.score_thresh),
        labels=[LABELS[i] if i >= 0 else None for i in class_map],
        class_map=[int(i) for i in class_map],
        weights=weights,
        weights_sha256=state_sha256(model),
        size_policy=POLICY_NAME if presized(model).transform.policy else "fixed",
        resize="host",
    )


@dataclasses.dataclass(frozen=True)
class Int8Ranges:
    """The activation ranges one calibration measured on one fp32 graph (ONNX Runtime's calibration cache, the JSON
    it reads and writes): the same ranges on the same graph give the same int8 file byte for byte, so a saved copy
    builds int8 without the frames. ``graph_sha256``: the fp32 graph's bytes (`graph_sha256`) they belong to."""

    graph_sha256: str
    cache: dict


def graph_sha256(proto: onnx.ModelProto) -> str:
    return hashlib.sha256(proto.SerializeToString()).hexdigest()


def quantize_int8(proto: onnx.ModelProto, calibration: list[np.ndarray] | Int8Ranges,
                  keep_fp32: tuple[str, ...] = FP32_NODES) -> tuple[onnx.ModelProto, Int8Ranges]:
    """Static int8 quantization of the convolutions and matrix products; returns the graph and its ranges.

    ONNX Runtime's post-training quantizer runs the fp32 graph on the frames (uint8 BGR, as the graph takes them),
    records each tensor's min/max and puts QDQ pairs on the quantized ops' inputs: weights int8 per output channel,
    activations uint8. Outputs are not quantized: OpenVINO then fuses each pair into its int8 kernel (VNNI or AMX),
    where quantized outputs left 40% of the time in unfused quantize/convert ops. ONNX Runtime runs the
    same file. Results move, so parity with torch holds for fp32 files only; measure int8 with the evaluate command.
    ``calibration``: the frames, or `Int8Ranges` saved from an earlier run on this same graph (a `CalibrationError`
    when they belong to another one).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Frames(CalibrationDataReader):
        def __init__(self, frames: list[np.ndarray]) -> None:
            self.frames = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            frame = next(self.frames, None)
            return None if frame is None else {INPUT_NAME: frame}

    sha = graph_sha256(proto)
    saved = isinstance(calibration, Int8Ranges)
    if saved and calibration.graph_sha256 != sha:
        raise CalibrationError(f"the saved int8 ranges were measured on another fp32 graph "
                               f"({calibration.graph_sha256[:12]}, this one {sha[:12]}): int8 needs its "
                               "calibration frames here (model.calibration), or use model.precision=fp32")
    if not saved and not calibration:
        raise ValueError("int8 quantization needs calibration frames")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8, cache = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        onnx.save(proto, str(fp32))
        if saved:
            cache.write_text(json.dumps(calibration.cache))
        excluded = [n.name for n in proto.graph.node if n.name.startswith(keep_fp32)]
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # a line per shared bias it copies, and advice on shape inference
        try:
            quantize_static(fp32, int8, None if saved else Frames(calibration), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded,
                            extra_options={"OpTypesToExcludeOutputQuantization": QUANTIZED_OPS},
                            calibration_cache_path=cache)
        finally:
            root.setLevel(level)
        return onnx.load(str(int8)), Int8Ranges(sha, json.loads(cache.read_text()))


def trace_frame_graph(model: nn.Module, sample: torch.Tensor, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """``FrameDetector(model)`` as an ONNX graph: input ``frame`` (H, W, 3) uint8 with dynamic H and W, outputs boxes,
    scores and labels with a dynamic detection count."""
    buffer = io.BytesIO()
    merge = mock.patch.object(poolers, "_onnx_merge_levels", gather_merge_levels)
    with torch.no_grad(), warnings.catch_warnings(), merge:
        # The tracer warns about torchvision internals that its ONNX support handles (tests/test_onnx.py checks),
        # and that this exporter is the legacy one (see the module docstring for why it is used).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            FrameDetector(model).eval(), (sample,), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "height", 1: "width"}, **{n: {0: "detections"} for n in OUTPUT_NAMES}},
        )
    return onnx.load_from_string(buffer.getvalue())


def export_model(
    model: nn.Module, meta: OnnxMetadata, out: Path, opset: int = DEFAULT_OPSET, precision: str = "fp32",
    calibration: list[np.ndarray] | Int8Ranges | None = None,
) -> onnx.ModelProto:
    """Trace ``model`` behind the frame preprocessing, attach ``meta``, check the graph and write it to ``out``.

    ``calibration``: the frames an int8 graph is calibrated on (`detector.calibration`), or ranges saved from such a
    run (`Int8Ranges`); int8 only.
    """
    proto = trace_export_graph(model, meta, opset)
    if precision == "int8":
        frames = calibration if isinstance(calibration, Int8Ranges) else graph_inputs(meta, calibration or [])
        proto = quantize_int8(proto, frames, fp32_nodes(meta.model_name))[0]
    onnx.helper.set_model_props(proto, dataclasses.replace(meta, precision=precision).to_props())
    onnx.checker.check_model(proto, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    return proto


def export(
    name: str, weights: str, top_n: int, out: Path, min_size: int = 0, max_size: int = 0,
    score_thresh: float = DEFAULT_SCORE_THRESH, opset: int = DEFAULT_OPSET, precision: str = "fp32",
    calibration: list[np.ndarray] | Int8Ranges | None = None,
) -> onnx.ModelProto:
    """Load ``name`` with ``weights`` (random ones from seed 0, so the file is reproducible) and export it."""
    model, class_map = load_for_export(name, weights, top_n, min_size, max_size, score_thresh)
    return export_model(model, describe(model, class_map, name, weights), out, opset, precision, calibration)


def measure_ranges(name: str, weights: str, top_n: int, min_size: int, max_size: int, score_thresh: float,
                   frames: list[np.ndarray], opset: int = DEFAULT_OPSET) -> Int8Ranges:
    """The activation ranges ``frames`` give the fp32 graph `export` would write: what an int8 export bakes in."""
    model, class_map = load_for_export(name, weights, top_n, min_size, max_size, score_thresh)
    meta = describe(model, class_map, name, weights)
    return quantize_int8(trace_export_graph(model, meta, opset), graph_inputs(meta, frames), fp32_nodes(name))[1]


def graph_inputs(meta: OnnxMetadata, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Camera frames as the graph described by ``meta`` takes them (`OnnxMetadata.fit`): what calibration runs."""
    return [meta.fit(frame)[0] for frame in frames]


def load_for_export(name: str, weights: str, top_n: int, min_size: int, max_size: int,
                    score_thresh: float) -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(0)
    return load_model(name, weights, top_n, min_size, max_size, score_thresh)


def trace_export_graph(model: nn.Module, meta: OnnxMetadata, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The fp32 graph `export_model` writes, before quantization and metadata (traced on a fixed random frame)."""
    sample = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (meta.min_size, meta.max_size, 3), np.uint8))
    return trace_frame_graph(fold_batch_norms(model), sample, opset)
