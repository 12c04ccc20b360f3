"""The evaluate command end to end on a generated VOC dataset, its error handling, and `evaluate_backend`."""
from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from commands.evaluate import main
from core.images import read_bgr
from core.detections import Detections
from detector.config import NmsConfig
from detector.datasets import load_dataset
from detector.nms import ClasswiseNms
from evaluation.bootstrap import DEFAULT_RESAMPLES
from evaluation.evaluate import evaluate_backend, evaluation_nms
from tests.conftest import write_tiny_voc

CONFIG = """model:
  name: fasterrcnn_mobilenet_v3_large_320_fpn
  weights: random
  device: cpu
  min_size: 128
  max_size: 160
  top_n: 20
nms:
  iou: 0.5
  score_thresh: 0.4
"""


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return write_tiny_voc(tmp_path / "tiny")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(CONFIG)
    return path


def test_command_writes_report_and_plot(voc: Path, config: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["--data", f"voc:{voc}", "--config", str(config), f"output.dir={out}", "model.top_n=10"])
    assert code == 0
    report = json.loads((out / "eval" / "tiny" / "report.json").read_text())
    assert set(report["classes"]) == {"car", "stop_sign"}
    assert report["classes"]["car"]["num_gt"] == 3 and report["classes"]["stop_sign"]["num_gt"] == 2
    for numbers in report["classes"].values():
        for key in ("ap50", "ap50_11pt", "ap50_101pt", "ap_coco"):
            assert 0.0 <= numbers[key] <= 1.0
    for key in ("map50", "map50_11pt", "map_coco"):
        assert 0.0 <= report[key] <= 1.0
    assert report["images"] == 3 and report["dataset"]["spec"] == f"voc:{voc}"
    assert report["config"]["model"]["top_n"] == 10
    assert report["config"]["nms"]["score_thresh"] == 0.0  # the YAML's display threshold is not used
    assert (out / "eval" / "tiny" / "pr_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "stop_sign" in table and "mAP" in table


def test_command_split_report_and_plots_flags(voc: Path, config: Path, tmp_path: Path) -> None:
    split = tmp_path / "val.txt"
    split.write_text("b\n")
    report_path, plots = tmp_path / "r" / "report.json", tmp_path / "plots"
    code = main(["--data", f"voc:{voc}", "--split", str(split), "--config", str(config),
                 "--report", str(report_path), "--plots", str(plots), "nms.score_thresh=0.3"])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["images"] == 1 and list(report["classes"]) == ["car"]
    assert report["config"]["nms"]["score_thresh"] == 0.3  # a command-line threshold is honoured
    assert (plots / "pr_curves.png").stat().st_size > 0


def test_versus_reports_per_class_differences_with_intervals(voc: Path, config: Path, tmp_path: Path,
                                                             capsys) -> None:
    report_path = tmp_path / "r" / "report.json"
    code = main(["--data", f"voc:{voc}", "--config", str(config), "--report", str(report_path),
                 "--resamples", "50", "--versus", "model.top_n=5 nms.iou=0.6"])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["resamples"] == 50
    for numbers in report["classes"].values():
        low, high = numbers["ap50_ci95"]
        assert 0.0 <= low <= high <= 1.0
    versus = report["versus"]
    assert versus["overrides"] == ["model.top_n=5", "nms.iou=0.6"]
    assert versus["config"]["model"]["top_n"] == 5 and versus["config"]["nms"]["iou"] == 0.6
    assert versus["config"]["nms"]["score_thresh"] == 0.0  # ranked like the first run
    assert set(versus["classes"]) == set(report["classes"])
    for name, numbers in versus["classes"].items():
        assert numbers["diff"] == pytest.approx(report["classes"][name]["ap50"] - numbers["ap50"], abs=2e-4)
        assert len(numbers["diff_ci95"]) == 2
    assert (report_path.parent / "versus.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "versus model.top_n=5 nms.iou=0.6:" in table and "95% CI of diff" in table and "AP50 95% CI" in table


def test_a_versus_model_that_fails_keeps_the_first_report(voc: Path, config: Path, tmp_path: Path, capsys) -> None:
    report_path = tmp_path / "report.json"
    code = main(["--data", f"voc:{voc}", "--config", str(config), "--report", str(report_path),
                 "--versus", f"model.weights={tmp_path / 'missing.pt'}"])
    assert code == 2
    err = capsys.readouterr().err  # the first model's progress bar, then the error
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "missing.pt" in errors[0] and "Traceback" not in err
    report = json.loads(report_path.read_text())
    assert set(report["classes"]) == {"car", "stop_sign"} and "versus" not in report


def test_no_resamples_no_intervals(voc: Path, config: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    assert main(["--data", f"voc:{voc}", "--config", str(config), "--report", str(report_path),
                 "--resamples", "0"]) == 0
    report = json.loads(report_path.read_text())
    assert "resamples" not in report and all("ap50_ci95" not in c for c in report["classes"].values())


def test_resamples_help_states_the_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert f"(default {DEFAULT_RESAMPLES};" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("args", [
    ["--data", "voc:/nonexistent/dataset"],
    ["--data", "pascal:{voc}"],
    ["--data", "voc:{voc}", "model.nonsense=1"],
    ["--data", "voc:{voc}", "--split", "/nonexistent/split.txt"],
    ["--config", "{config}"],
    ["--data", "voc:{voc}", "--versus", "model.nonsense=1"],
    ["--data", "voc:{voc}", "--versus", ""],
    ["--data", "voc:{voc}", "--versus", "'model.top_n=5"],
    ["--data", "voc:{voc}", "--resamples", "-1"],
])
def test_bad_input_exits_2_with_one_line(args: list[str], voc: Path, config: Path, capsys) -> None:
    argv = [a.format(voc=voc, config=config) for a in args]
    if "--config" not in argv:
        argv += ["--config", str(config)]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


class OracleBackend:
    """Returns each image's ground truth (found by the frame's pixels, so in any order) at a fixed score: a perfect,
    unsure model."""

    name = "oracle"

    def __init__(self, images, score: float):
        self.truths = {read_bgr(item.path).tobytes(): item for item in images}
        self.score = score
        self.threads: set[int] = set()

    def worker_threads(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __call__(self, frame_bgr: np.ndarray) -> Detections:
        self.threads.add(threading.get_ident())
        time.sleep(0.02)  # long enough for the other workers to take the next images
        item = self.truths[frame_bgr.tobytes()]
        return Detections(item.boxes, np.full(len(item.boxes), self.score), item.labels)


def test_evaluate_backend_ranks_low_scores(voc: Path) -> None:
    dataset = load_dataset(f"voc:{voc}")
    display = NmsConfig(iou=0.5, score_thresh=0.4)
    perfect = evaluate_backend(OracleBackend(dataset.images, 0.1), ClasswiseNms(evaluation_nms(display, [])), dataset)
    assert [c.name for c in perfect.classes] == ["car", "stop_sign"]
    assert perfect.map50 == perfect.map50_11pt == perfect.map50_95 == pytest.approx(1.0)
    assert perfect.images == 3 and perfect.seconds > 0
    cut = evaluate_backend(OracleBackend(dataset.images, 0.1), ClasswiseNms(display), dataset.images, progress=False)
    assert cut.map50 == 0.0 and all(c.num_det == 0 for c in cut.classes)
    assert {c.name: c.num_gt for c in cut.classes} == {"car": 3, "stop_sign": 2}


def test_evaluate_backend_with_images_in_flight_scores_each_image_against_its_own_truth(voc: Path) -> None:
    dataset = load_dataset(f"voc:{voc}")
    nms = ClasswiseNms(NmsConfig(score_thresh=0.0))
    one = evaluate_backend(OracleBackend(dataset.images, 0.5), nms, dataset, progress=False)
    oracle = OracleBackend(dataset.images, 0.5)
    three = evaluate_backend(oracle, nms, [*dataset.images, *reversed(dataset.images)], progress=False, workers=3)
    assert one.map50 == three.map50 == pytest.approx(1.0) and three.images == 2 * one.images
    assert [c.num_det for c in three.classes] == [2 * c.num_det for c in one.classes]
    assert len(oracle.threads) > 1  # the images really ran on several threads


def test_evaluate_backend_scores_only_the_classes_the_nms_keeps(voc: Path) -> None:
    dataset = load_dataset(f"voc:{voc}")
    cars = evaluate_backend(OracleBackend(dataset.images, 0.9), ClasswiseNms(NmsConfig(classes=["car"])), dataset)
    assert [c.name for c in cars.classes] == ["car"]  # stop_sign has ground truth but was filtered out on purpose
    assert cars.map50 == pytest.approx(1.0)


def test_evaluation_nms_keeps_iou_and_classes() -> None:
    cfg = NmsConfig(iou=0.6, score_thresh=0.5, class_thresh={"car": 0.7}, classes=["car", "person"])
    relaxed = evaluation_nms(cfg, ["model.top_n=5"])
    assert (relaxed.iou, relaxed.score_thresh, relaxed.class_thresh) == (0.6, 0.0, {})
    assert relaxed.classes == ["car", "person"]
    kept = evaluation_nms(cfg, ["nms.class_thresh.car=0.7"])
    assert kept.class_thresh == {"car": 0.7} and kept.score_thresh == 0.0
