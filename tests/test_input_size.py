"""The bundled model's input-size policy on every aspect ratio, in torch and in the exported graph alike."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torchvision.ops import box_iou

from detector.backend_onnx import OnnxBackend
from detector.graph import read_metadata
from detector.backend_torch import TorchBackend
from detector.export import describe, export_model
from core.detections import Detections
from detector.input_size import POLICY_NAME, PolicyTransform, PresizedTransform, coarse_size, policy_size
from detector.preprocess import to_model_input
from detector.models import BUNDLED_MODEL, build_detector
from detector.weights import load_model
from tests.test_onnx import SAMPLE_VIDEO, assert_same, scene


def sample_frame(width: int, height: int, index: int = 40) -> np.ndarray:
    """A frame of the bundled sample clip (cars, signs, a person) scaled to ``width`` x ``height``."""
    capture = cv2.VideoCapture(str(SAMPLE_VIDEO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)

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


def test_the_host_resize_gives_what_the_models_own_resize_gave():
    """The backends resize frames on the host (uint8, OpenCV) before a `PresizedTransform`; the detections match
    the model resizing the float frame itself (torch's interpolate), the path training and eager use take."""
    model, class_map = load_model(BUNDLED_MODEL, "default", 300)
    own = copy.deepcopy(model).eval()
    host = TorchBackend(model, class_map, torch.device("cpu"))
    assert isinstance(host.model.transform, PresizedTransform) and isinstance(own.transform, PolicyTransform)
    frame = sample_frame(1920, 1080)
    with torch.inference_mode():
        out = own([to_model_input(torch.from_numpy(frame))])[0]
    expected = Detections.from_model_output(out["boxes"], out["scores"], out["labels"], class_map)
    actual = host(frame)
    # uint8 OpenCV and float torch resizing differ by a rounding per pixel: the same boxes, scores a few hundredths
    # apart on a borderline box (0.536 against 0.501 for one car with the stage-5 weights) and far less in general
    for one, other in [(expected, actual), (actual, expected)]:
        confident = one[one.scores >= 0.4]
        assert len(confident) >= 20  # the sample frame has cars, signs and lights to compare
        iou = box_iou(torch.from_numpy(confident.boxes), torch.from_numpy(other.boxes)).numpy()
        gaps = []
        for i in range(len(confident)):
            same = (other.labels == confident.labels[i]) & (iou[i] >= 0.95)
            assert np.any(same), f"no box for {confident[np.array([i])].to_json()}"
            gaps.append(np.abs(other.scores[same] - confident.scores[i]).min())
        assert max(gaps) <= 0.06 and np.median(gaps) <= 0.01, (max(gaps), np.median(gaps))


def test_presized_graphs_take_frames_at_the_models_size(tmp_path: Path):
    """A graph exported now says the host resizes (``resize: host``) and sizes frames by the policy; a 1-pixel-high
    frame still has a size."""
    torch.manual_seed(0)
    model, class_map = load_model(BUNDLED_MODEL, "default", 50)
    meta = describe(model, class_map, BUNDLED_MODEL, "default")
    assert meta.resize == "host"
    for size, seen in EXPECTED.items():
        image, back = meta.fit(np.zeros((size[1], size[0], 3), np.uint8))
        assert (image.shape[1], image.shape[0]) == seen
        np.testing.assert_allclose(back, [size[0] / seen[0], size[1] / seen[1]] * 2, rtol=1e-6)
    assert meta.fit(np.zeros((1, 1920, 3), np.uint8))[0].shape[:2] == (1, 1600)
    old = dataclasses.replace(meta, resize="graph")  # a file exported before 2026-12-04 resizes inside
    frame = np.zeros((1080, 1920, 3), np.uint8)
    assert old.fit(frame)[0] is frame


@pytest.mark.parametrize("size, coarse", [
    ((1920, 1080), (568, 320)), ((1280, 720), (568, 320)), ((1360, 800), (544, 320)), ((1080, 1920), (320, 568)),
    ((3840, 2160), (568, 320)), ((640, 360), None), ((1242, 375), None), ((300, 400), None), ((64, 48), None),
    ((1920, 1), None),
])
def test_coarse_size_is_the_base_size_only_where_the_policy_enlarges_a_frame_well_beyond_it(size, coarse):
    """HD frames get base-size passes (``model.full_size_every``); 640x360 and wide 3.3:1 frames, which the
    policy already sees at about the base size, do not. A frame shrunk to the base size passes a backend as it is
    (the policy maps it to itself), so the pipeline can hand it over without the backend knowing."""
    assert coarse_size(*size) == coarse
    if coarse is not None:
        assert policy_size(*coarse) == coarse
