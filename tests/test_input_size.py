"""The bundled model's input-size policy on every aspect ratio, in torch and in the exported graph alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from detector.backend_onnx import OnnxBackend
from detector.graph import read_metadata
from detector.backend_torch import TorchBackend
from detector.export import describe, export_model
from detector.input_size import POLICY_NAME, PolicyTransform, policy_size
from detector.models import BUNDLED_MODEL, build_detector
from detector.weights import load_model
from tests.test_onnx import assert_same, scene

# (width, height) -> what the model sees; the input-size table of docs/benchmarks.md says the same
EXPECTED = {
    (640, 360): (568, 320),     # 16:9 SD dashcam: as before the policy
    (1280, 720): (956, 538),    # 16:9 HD
    (1920, 1080): (1296, 729),   # 16:9 full HD
    (1360, 800): (990, 582),    # 1.7:1 (GTSDB)
    (1242, 375): (1092, 329),   # 3.3:1 (KITTI-like)
    (640, 480): (529, 397),     # 4:3
    (500, 375): (439, 329),     # 4:3 photo (VOC)
    (300, 400): (320, 426),     # portrait photo: the 320 floor
    (320, 180): (568, 320),     # small footage is enlarged to the floor, as before
}


@pytest.mark.parametrize(("size", "seen"), EXPECTED.items(), ids=[f"{w}x{h}" for w, h in EXPECTED])
def test_policy_sizes_and_the_model_resizes_to_them(size, seen):
    assert policy_size(*size) == seen
    model = build_detector(BUNDLED_MODEL, 11).eval()
    assert isinstance(model.transform, PolicyTransform)
    resized, _ = model.transform.resize(torch.zeros(3, size[1], size[0]))
    assert (resized.shape[-1], resized.shape[-2]) == seen


def test_an_explicit_min_size_keeps_the_fixed_range():
    model = build_detector(BUNDLED_MODEL, 11, min_size=320, max_size=640).eval()
    assert not isinstance(model.transform, PolicyTransform)
    resized, _ = model.transform.resize(torch.zeros(3, 375, 1242))
    assert resized.shape[-2:] == (193, 640)  # what the policy fixes on wide frames


def test_the_exported_graph_resizes_by_the_policy_as_torch_does(tmp_path: Path):
    torch.manual_seed(0)
    model, class_map = load_model(BUNDLED_MODEL, "default", 50)
    path = tmp_path / "bundled.onnx"
    export_model(model, describe(model, class_map, BUNDLED_MODEL, "default"), path)
    assert read_metadata(path).size_policy == POLICY_NAME
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph, eager = OnnxBackend(session, read_metadata(path)), TorchBackend(model, class_map, torch.device("cpu"))
    for width, height in [(1242, 375), (1360, 800), (640, 360)]:
        frame = scene(height, width, seed=width)
        expected = eager(frame)
        assert_same(expected, graph(frame), min_iou=0.99, score_tol=2e-3)
        assert np.all(expected.boxes[:, 2] <= width + 1e-3) and np.all(expected.boxes[:, 3] <= height + 1e-3)
