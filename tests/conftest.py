"""Shared fixtures: the shared data folder (skipped with a reason when absent) and a tiny random-init model config."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip when this machine has no copy."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lives beside the repository, never inside it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _quiet_random_weights_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


# A random-init torchvision model at a tiny input size: for tests where weights don't matter.
RANDOM_MODEL = [
    "model.name=fasterrcnn_mobilenet_v3_large_320_fpn", "model.weights=random", "model.backend=torch",
    "model.min_size=96", "model.max_size=128", "model.top_n=20", "model.device=cpu",
]


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (160, 120), fps: float = 10.0,
                codec: str = "MJPG") -> Path:
    """A small clip of a bright box moving across a dark road, frame i drawn from i alone."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    assert writer.isOpened(), f"cannot write test video {path}"
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        x = 5 + (i * 7) % max(size[0] - 40, 1)
        cv2.rectangle(image, (x, size[1] // 3), (x + 30, size[1] // 3 + 20), (0, 0, 220), -1)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless Chromium through its driver (the dashboard and video playback tests)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with the driver given too, Selenium Manager downloads nothing
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi")


@pytest.fixture(autouse=True, scope="session")
def _export_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Graphs exported by ``backend=auto`` go to a folder of this test session, never the user's cache."""
    import os

    from detector.export_cache import CACHE_ENV

    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("export-cache"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny test models gain nothing from threads, and OpenMP threads fight over 2 cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sample():
    """``samples/make_sample.py`` as a module (`bench.clips.sample_renderer`)."""
    from bench.clips import sample_renderer

    return sample_renderer()


# name -> (size (w, h), [(class, xmin, ymin, xmax, ymax)])
TINY_VOC = {
    "a": ((160, 120), [("car", 10, 20, 70, 60), ("stop", 100, 10, 140, 50)]),
    "b": ((160, 120), [("car", 30, 40, 110, 100)]),
    "c": ((160, 120), [("stop", 60, 30, 90, 70), ("car", 5, 70, 50, 115)]),
}


def write_tiny_voc(root: Path) -> Path:
    """A VOC folder of `TINY_VOC` with a filled rectangle per box."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for stem, ((w, h), objects) in TINY_VOC.items():
        image = np.full((h, w, 3), 90, np.uint8)
        xml = [f"<annotation><filename>{stem}.jpg</filename><size><width>{w}</width><height>{h}</height>"
               "<depth>3</depth></size>"]
        for name, *box in objects:
            cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), (20, 200, 240), -1)
            xml.append(f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                       f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), image)
        (root / "annotations" / f"{stem}.xml").write_text("".join(xml) + "</annotation>")
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """A fixed-seed random model exported once per module, with a TorchBackend running the same weights (the
    ONNX Runtime and OpenVINO parity tests compare against it)."""
    import torch

    from detector.backend_torch import TorchBackend
    from detector.export import describe, export_model
    from detector.weights import load_model
    from tests.test_onnx import MAX_SIZE, MIN_SIZE, NAME, SCORE_THRESH, TOP_N

    torch.manual_seed(0)
    model, class_map = load_model(NAME, "random", TOP_N, MIN_SIZE, MAX_SIZE, SCORE_THRESH)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_model(model, describe(model, class_map, NAME, "random"), path)
    return path, TorchBackend(model, class_map, torch.device("cpu"))
