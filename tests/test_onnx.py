"""ONNX export and the ONNX Runtime backend: parity with TorchBackend, the file's metadata, and bad input."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torchvision.ops import box_iou, poolers

from commands.export import main
from core.config import ConfigError
from core.detections import Detections
from core.labels import LABELS
from detector.backend import check_class_filter
from detector.backend_onnx import OnnxBackend, provider_list
from detector.graph import OnnxMetadata, OnnxModelError, read_metadata
from detector.backend_torch import TorchBackend
from detector.config import ModelConfig, NmsConfig, OnnxConfig
from detector.calibration import calibration_paths, read_frames
from detector.datasets import AnnotatedImage, DataSource
from detector.export import (
    DEFAULT_OPSET,
    FP32_NODES,
    describe,
    export_model,
    gather_merge_levels,
    state_sha256,
    trace_frame_graph,
)
from detector.models import BUNDLED_MODEL
from detector.weights import BUNDLED_WEIGHTS, coco_class_map, load_model
from tests.conftest import TINY_VOC, write_tiny_voc
from training.train import TrainImages

NAME = "fasterrcnn_mobilenet_v3_large_320_fpn"
TOP_N, MIN_SIZE, MAX_SIZE, SCORE_THRESH = 20, 160, 256, 0.05
SIZES = [(120, 160), (180, 320), (256, 256)]
CPU = torch.device("cpu")
SAMPLE_VIDEO = Path(__file__).resolve().parent.parent / "samples" / "driving_sample.mp4"


def scene(height: int, width: int, seed: int = 1) -> np.ndarray:
    """A BGR frame of coloured rectangles: structure for the detector to respond to, reproducible by seed."""
    rng = np.random.default_rng(seed)
    frame = np.full((height, width, 3), 90, np.uint8)
    for _ in range(12):
        x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
        x1, y1 = x0 + rng.integers(6, width // 2), y0 + rng.integers(6, height // 2)
        cv2.rectangle(frame, (int(x0), int(y0)), (int(x1), int(y1)), rng.integers(0, 256, 3).tolist(), -1)
    return frame


def model_config(path: Path, **overrides) -> ModelConfig:
    values = dict(
        name=NAME, weights="random", top_n=TOP_N, min_size=MIN_SIZE, max_size=MAX_SIZE,
        score_thresh=SCORE_THRESH, backend="onnx", onnx_path=str(path), device="cpu",
    )
    return ModelConfig(**{**values, **overrides})


def cpu_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def assert_same(expected: Detections, actual: Detections, min_iou: float = 0.99, score_tol: float = 1e-3) -> None:
    """Every box matched one-to-one: same label, IoU >= ``min_iou``, score within ``score_tol``."""
    assert len(actual) == len(expected)
    iou = box_iou(torch.from_numpy(expected.boxes), torch.from_numpy(actual.boxes)).numpy()
    used = np.zeros(len(actual), bool)
    for i in np.argsort(-expected.scores):
        ok = ~used & (actual.labels == expected.labels[i]) & (np.abs(actual.scores - expected.scores[i]) <= score_tol)
        candidates = np.flatnonzero(ok)
        assert candidates.size, f"no match for {expected[np.array([i])].to_json()}"
        j = candidates[np.argmax(iou[i, candidates])]
        assert iou[i, j] >= min_iou, f"best IoU {iou[i, j]:.4f} for {expected.boxes[i]} vs {actual.boxes[j]}"
        used[j] = True


@pytest.fixture(scope="module")
def onnx_backend(exported: tuple[Path, TorchBackend]) -> OnnxBackend:
    return OnnxBackend.from_config(model_config(exported[0]), exported[0])


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_onnx_matches_torch(exported: tuple[Path, TorchBackend], onnx_backend: OnnxBackend, size: tuple) -> None:
    frame = scene(*size)
    expected = exported[1](frame)
    assert len(expected) > 0, "the random model must produce detections for the comparison to mean anything"
    assert_same(expected, onnx_backend(frame))


def test_gather_merge_equals_torchvisions_scatter_merge() -> None:
    """The export's RoI merge must give torchvision's result: RoIs back in input order whatever their level."""
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 3, (40,), generator=generator)
    per_level = [torch.randn(int((levels == k).sum()), 4, 7, 7, generator=generator) for k in range(3)]
    expected = poolers._onnx_merge_levels(levels, per_level)
    assert torch.equal(gather_merge_levels(levels, per_level), expected)


def test_graph_has_no_elementwise_scatter(exported: tuple[Path, TorchBackend]) -> None:
    """ScatterElements was 15% of the 320 model's CPU time; the export merges RoI levels with a gather instead."""
    assert "ScatterElements" not in {node.op_type for node in onnx.load(str(exported[0])).graph.node}


def test_int8_calibration_smoke_test_on_a_tiny_generated_set(exported: tuple[Path, TorchBackend],
                                                             tmp_path: Path) -> None:
    """Static int8: a generated image set calibrates the graph; every convolution and matrix product then takes
    quantized inputs, no output is quantized (so OpenVINO fuses each pair), and both runtimes run the file close
    to torch. Measured accuracy is the evaluate command's job."""
    root = write_tiny_voc(tmp_path / "voc")
    frames = read_frames(calibration_paths([DataSource(f"voc:{root}")], 8))
    assert len(frames) == len(TINY_VOC)  # a set smaller than asked for gives each image once
    model, class_map = exported[1].model, exported[1].class_map
    path = tmp_path / "int8.onnx"
    proto = export_model(model, describe(model, class_map, NAME, "random"), path, precision="int8",
                         calibration=frames)
    producer = {out: node.op_type for node in proto.graph.node for out in node.output}
    feeds: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            feeds.setdefault(name, set()).add(node.op_type)
    dequantized = [node.output[0] for node in proto.graph.node if node.op_type == "DequantizeLinear"]
    ops = [node for node in proto.graph.node if node.op_type in ("Conv", "Gemm")]
    kept = [node for node in ops if node.name.startswith(FP32_NODES)]  # the first layers stay fp32 on purpose
    assert kept and all(producer[node.input[0]] != "DequantizeLinear" for node in kept)
    assert all(producer[node.input[0]] == "DequantizeLinear" for node in ops if node not in kept)
    assert all(feeds[name] & {"Conv", "Gemm"} for name in dequantized)  # a QDQ pair only where an op needs it
    backend = OnnxBackend.from_config(model_config(path), path)
    assert backend.meta.precision == "int8" and backend.name == "onnx-int8"
    assert path.stat().st_size < 0.5 * exported[0].stat().st_size  # int8 weights
    from detector.backend_openvino import OpenVinoBackend

    vino = OpenVinoBackend.from_config(model_config(path, backend="openvino", precision="int8"), path)
    assert vino.name == "openvino-int8"
    frame = scene(180, 320)
    expected = exported[1](frame)
    top = np.argsort(-expected.scores)[:5]  # random weights score most boxes alike; the top ones are stable
    for actual in (backend(frame), vino(frame)):
        iou = box_iou(torch.from_numpy(expected.boxes[top]), torch.from_numpy(actual.boxes)).numpy()
        same_label = expected.labels[top, None] == actual.labels
        close = same_label & (np.abs(expected.scores[top, None] - actual.scores) < 0.01)
        assert (np.where(close, iou, 0).max(1) > 0.95).all()
    with pytest.raises(ValueError, match="calibration frames"):
        export_model(model, describe(model, class_map, NAME, "random"), tmp_path / "x.onnx", precision="int8")


def test_files_without_a_precision_key_are_fp32(exported: tuple[Path, TorchBackend]) -> None:
    props = read_metadata(exported[0]).to_props()
    del props["precision"]
    assert OnnxMetadata.from_props(props, "older.onnx").precision == "fp32"


def test_io_binding_path_matches(exported: tuple[Path, TorchBackend], onnx_backend: OnnxBackend) -> None:
    """The IO-binding path (used on GPU providers) runs on CPU too, so its bookkeeping is checked here."""
    bound = OnnxBackend(onnx_backend.session, onnx_backend.meta, io_binding=True)
    frame = scene(180, 320, seed=2)
    assert_same(exported[1](frame), bound(frame))


def test_a_frame_without_detections(exported: tuple[Path, TorchBackend], tmp_path: Path) -> None:
    torch_backend = exported[1]
    torch_backend.model.roi_heads.score_thresh = 0.99
    try:
        path = tmp_path / "strict.onnx"
        export_model(torch_backend.model, describe(torch_backend.model, torch_backend.class_map, NAME, "random"), path)
        onnx_backend = OnnxBackend(cpu_session(path), read_metadata(path))
        frame = scene(120, 160)
        assert len(torch_backend(frame)) == 0
        assert len(onnx_backend(frame)) == 0
    finally:
        torch_backend.model.roi_heads.score_thresh = SCORE_THRESH


def test_metadata_and_checker(exported: tuple[Path, TorchBackend]) -> None:
    path, torch_backend = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {DEFAULT_OPSET}
    frame_input = proto.graph.input[0]
    assert frame_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in frame_input.type.tensor_type.shape.dim] == ["height", "width", 3]
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["model_name"] == NAME
    assert (props["top_n"], props["min_size"], props["max_size"]) == (TOP_N, MIN_SIZE, MAX_SIZE)
    assert props["score_thresh"] == pytest.approx(SCORE_THRESH)
    assert props["labels"] == list(LABELS)
    assert props["class_map"] == list(range(len(LABELS)))
    assert props["weights_sha256"] == state_sha256(torch_backend.model)


def test_coco_labels_map_to_driving_names(exported: tuple[Path, TorchBackend]) -> None:
    meta = describe(exported[1].model, coco_class_map(), NAME, "coco")
    assert meta.labels[3] == "car" and meta.labels[10] == "traffic_light" and meta.labels[5] is None
    assert meta.class_map[3] == LABELS.index("car") and meta.class_map[5] == -1
    assert OnnxMetadata.from_props(meta.to_props(), "coco.onnx") == meta


def test_cli_exports_reproducible_random_weights(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli.onnx"
    args = ["--model", BUNDLED_MODEL, "--weights", "random", "--top-n", "10", "--out", str(out),
            "--min-size", "96", "--max-size", "128", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"opset {DEFAULT_OPSET}" in printed and "ran a frame on cpu" in printed
    torch.manual_seed(0)
    model, _ = load_model(BUNDLED_MODEL, "random", 10, 96, 128)
    assert read_metadata(out).weights_sha256 == state_sha256(model)


def test_cli_export_for_a_device_it_cannot_run_on_is_one_line_exit_2_before_exporting(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["--model", BUNDLED_MODEL, "--weights", "random", "--out", str(tmp_path / "x.onnx"), "--device", "cuda"]
    assert main(args) == 2
    assert capsys.readouterr().err == ("error: 'model.device' = 'cuda' but no CUDA device is available; "
                                       "use auto or cpu\n")
    assert not (tmp_path / "x.onnx").exists()


def test_export_device_is_where_the_graph_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto follows CUDA when present and ONNX Runtime can run there; an int8 graph runs on CPUs only: auto checks
    it there, cuda is refused."""
    from detector.backend import export_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert export_device(ModelConfig(device="auto")) == "cpu"
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert export_device(ModelConfig(device="auto")) == "cuda"
    assert export_device(ModelConfig(device="cpu")) == "cpu"
    assert export_device(ModelConfig(device="auto"), "int8") == "cpu"
    with pytest.raises(ConfigError, match="int8 graph runs on the CPU only"):
        export_device(ModelConfig(device="cuda"), "int8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert export_device(ModelConfig(device="auto")) == "cpu"


def test_cli_bad_weights_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--model", BUNDLED_MODEL, "--weights", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: weights file") and "\n" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match="does not exist"):
        OnnxBackend.from_config(model_config(tmp_path / "absent.onnx"), tmp_path / "absent.onnx")


@pytest.mark.parametrize("content", [b"\x00\xffnot a model\x12" * 50, b"garbage", b""], ids=["bytes", "short", "empty"])
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(content)
    with pytest.raises(OnnxModelError, match="is not a readable ONNX model") as info:
        OnnxBackend.from_config(model_config(path), path)
    assert "\n" not in str(info.value)


def test_truncated_export(exported: tuple[Path, TorchBackend], tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    path.write_bytes(exported[0].read_bytes()[:100_000])
    with pytest.raises(OnnxModelError, match="not a readable ONNX model"):
        OnnxBackend.from_config(model_config(path), path)


def test_onnx_without_project_metadata(tmp_path: Path) -> None:
    node = onnx.helper.make_node("Identity", ["frame"], ["boxes"])
    graph = onnx.helper.make_graph(
        [node], "identity",
        [onnx.helper.make_tensor_value_info("frame", onnx.TensorProto.UINT8, ["h", "w", 3])],
        [onnx.helper.make_tensor_value_info("boxes", onnx.TensorProto.UINT8, ["h", "w", 3])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(OnnxModelError, match="lacks this project's metadata .*model_name"):
        OnnxBackend.from_config(model_config(path), path)


def test_labels_that_disagree_with_the_label_map(exported: tuple[Path, TorchBackend]) -> None:
    props = read_metadata(exported[0]).to_props()
    props["labels"] = json.dumps(["background", "truck", "car", *LABELS[3:]])
    with pytest.raises(OnnxModelError, match="model class 1 is 'truck' with driving id 1"):
        OnnxMetadata.from_props(props, "swapped.onnx")


def test_config_that_disagrees_with_the_graph(exported: tuple[Path, TorchBackend]) -> None:
    with pytest.raises(OnnxModelError, match=r"top_n 20 vs model.top_n=300.*min_size 160 vs model.min_size=320"):
        OnnxBackend.from_config(model_config(exported[0], top_n=300, min_size=0), exported[0])


def test_cuda_requested_without_a_gpu_provider(exported: tuple[Path, TorchBackend]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="model.device = 'cuda'"):
        OnnxBackend.from_config(model_config(exported[0], device="cuda"), exported[0])


def test_frame_the_model_rejects(onnx_backend: OnnxBackend) -> None:
    for frame in (np.zeros((120, 160), np.uint8), np.zeros((120, 160, 3), np.float32), np.zeros((0, 160, 3), np.uint8)):
        with pytest.raises(OnnxModelError, match="uint8 BGR frame"):
            onnx_backend(frame)


def test_class_filter_checked_against_the_model(caplog: pytest.LogCaptureFixture) -> None:
    coco = coco_class_map()
    with pytest.raises(ConfigError, match="keeps none of the classes"):
        check_class_filter(coco, NmsConfig(classes=["speed_limit", "crosswalk_sign"]), "coco")
    assert check_class_filter(coco, NmsConfig(), "coco") == ["crosswalk_sign", "speed_limit"]
    assert "never outputs crosswalk_sign, speed_limit" in caplog.text
    assert check_class_filter(np.arange(len(LABELS)), NmsConfig(), BUNDLED_MODEL) == []


def test_unavailable_providers_fall_back_with_one_warning(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    gpu = OnnxConfig(providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"], trt_cache_dir=str(tmp_path))
    cfg = model_config(tmp_path / "m.onnx", device="auto", onnx=gpu, precision="fp16")
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert provider_list(cfg, available, cuda_present=False) == [("CPUExecutionProvider", {})]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    providers = dict(provider_list(cfg, available, cuda_present=True))
    assert list(providers) == available
    assert providers["TensorrtExecutionProvider"]["trt_fp16_enable"] is True
    assert providers["TensorrtExecutionProvider"]["trt_engine_cache_path"] == str(tmp_path)
    cpu_only = model_config(tmp_path / "m.onnx", device="cpu", onnx=gpu)
    assert provider_list(cpu_only, available, cuda_present=True) == [("CPUExecutionProvider", {})]


def test_bundled_model_matches_torch(tmp_path: Path) -> None:
    if not BUNDLED_WEIGHTS.exists():
        pytest.skip(f"bundled weights {BUNDLED_WEIGHTS.name} not trained yet (detector/weights/)")
    model, class_map = load_model(BUNDLED_MODEL, "default", 100, score_thresh=0.01)
    path = tmp_path / "bundled.onnx"
    export_model(model, describe(model, class_map, BUNDLED_MODEL, "default"), path)
    torch_backend = TorchBackend(model, class_map, CPU)
    onnx_backend = OnnxBackend(cpu_session(path), read_metadata(path))
    ok, frame = cv2.VideoCapture(str(SAMPLE_VIDEO)).read()
    assert ok, f"cannot read {SAMPLE_VIDEO}"
    expected = torch_backend(frame)
    assert len(expected) > 0
    assert_same(expected, onnx_backend(frame))


class EchoModel(torch.nn.Module):
    """Stands in for a detector: returns the (3, H, W) image it was given, four values per "box"."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        flat = images[0].reshape(-1, 4)
        return [{"boxes": flat, "scores": flat[:, 0], "labels": torch.zeros_like(flat[:, 0], dtype=torch.int64)}]


def test_exported_graph_torch_backend_and_trainer_preprocess_identically(tmp_path: Path) -> None:
    """One preprocessing function (detector.preprocess): the ONNX graph, TorchBackend and the trainer agree."""
    path = tmp_path / "echo.onnx"
    onnx.save(trace_frame_graph(EchoModel(), torch.from_numpy(scene(16, 20))), str(path))
    frame = scene(24, 36, seed=7)  # another size than traced: the graph's preprocessing is shape-generic
    from_graph = cpu_session(path).run(["boxes"], {"frame": frame})[0].reshape(-1)
    from_backend = TorchBackend(EchoModel(), np.arange(len(LABELS)), CPU).preprocess(frame).reshape(-1).numpy()
    cv2.imwrite(str(tmp_path / "f.png"), frame)  # lossless, so the trainer reads the same pixels back
    item = AnnotatedImage(tmp_path / "f.png", 36, 24, np.array([[1, 1, 9, 9]], np.float32), np.array([1]))
    from_trainer = TrainImages([item])[0][0].reshape(-1).numpy()
    np.testing.assert_array_equal(from_graph, from_backend)
    np.testing.assert_array_equal(from_trainer, from_backend)
    assert from_backend.reshape(3, 24, 36)[:, 5, 7] == pytest.approx(frame[5, 7, ::-1] / 255)  # RGB, CHW, [0, 1]
    # channels reversed as planes, not per pixel on the HWC input (OpenVINO ran that Slice with a slow kernel)
    assert not [node for node in onnx.load(str(path)).graph.node if node.op_type == "Slice" and "frame" in node.input]
