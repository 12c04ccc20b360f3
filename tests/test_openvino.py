"""OpenVINO runs the exported graph with the same results as torch at fp32, on every frame size, in any thread."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")

from detector.backend import build_backend  # noqa: E402
from detector.graph import OnnxModelError  # noqa: E402
from detector.backend_openvino import OpenVinoBackend  # noqa: E402
from detector.backend_torch import TorchBackend  # noqa: E402
from detector.weights import BUNDLED_WEIGHTS  # noqa: E402
from tests.test_onnx import SAMPLE_VIDEO, SIZES, assert_same, model_config, scene  # noqa: E402


@pytest.fixture(scope="module")
def openvino_backend(exported: tuple[Path, TorchBackend]) -> OpenVinoBackend:
    path = exported[0]
    return OpenVinoBackend.from_config(model_config(path, backend="openvino", precision="fp32"), path)


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_openvino_fp32_matches_torch(exported, openvino_backend: OpenVinoBackend, size: tuple) -> None:
    frame = scene(*size)
    expected = exported[1](frame)
    assert len(expected) > 0
    assert_same(expected, openvino_backend(frame), min_iou=0.99, score_tol=2e-3)
    assert openvino_backend.name == "openvino"


def test_each_thread_gets_its_own_request_and_the_same_answer(exported, openvino_backend: OpenVinoBackend) -> None:
    frame = scene(180, 320, seed=3)
    expected = exported[1](frame)
    results = []
    threads = [threading.Thread(target=lambda: results.append(openvino_backend(frame))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for result in results:
        assert_same(expected, result, min_iou=0.99, score_tol=2e-3)


def test_a_frame_openvino_cannot_take_is_one_clear_error(openvino_backend: OpenVinoBackend) -> None:
    with pytest.raises(OnnxModelError, match="uint8 BGR frame"):
        openvino_backend(np.zeros((10, 10), np.float32))


def test_bundled_model_auto_export_matches_torch(tmp_path: Path) -> None:
    """The default path end to end: backend=openvino, the graph exported into the cache, fp32 parity with torch."""
    if not BUNDLED_WEIGHTS.exists():
        pytest.skip(f"bundled weights {BUNDLED_WEIGHTS.name} not trained yet (detector/weights/)")
    from detector.config import ModelConfig

    common = dict(top_n=100, device="cpu", cache_dir=str(tmp_path))
    vino = build_backend(ModelConfig(backend="openvino", precision="fp32", **common))
    torch_backend = build_backend(ModelConfig(backend="torch", precision="fp32", **common))
    ok, frame = cv2.VideoCapture(str(SAMPLE_VIDEO)).read()
    assert ok
    expected = torch_backend(frame)
    assert len(expected) > 0 and vino.name == "openvino"
    assert_same(expected, vino(frame), min_iou=0.98, score_tol=5e-3)
    assert len(list(tmp_path.glob("*.onnx"))) == 1
