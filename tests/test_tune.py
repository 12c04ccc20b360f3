"""The top-N tuner: Pareto front and recommendation on synthetic measurements, a tiny CPU sweep, bad inputs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench.tune import Measurement, Setting, accuracy_label, pareto_front, recommend
from commands.tune import main
from core.labels import LABELS
from stream.config import load_pipeline_config
from stream.record import read_records
from tests.conftest import RANDOM_MODEL, write_tiny_voc, write_video


def point(top_n: int, fps: float, map50: float, backend: str = "torch") -> Measurement:
    """A synthetic measurement whose median pipeline FPS is ``fps`` (repeats spread around it)."""
    return Measurement(Setting(backend, 0, top_n), [fps * 2], [fps - 0.5, fps, fps + 0.3], map50)


FAST = point(10, 20.0, 0.40)
MID = point(50, 12.0, 0.55)
SLOW = point(300, 8.0, 0.60)
DOMINATED = point(150, 7.0, 0.52)  # slower and less accurate than MID and SLOW
SWEEP = [FAST, MID, SLOW, DOMINATED]


def test_pareto_front_excludes_dominated_points_and_keeps_equal_ones() -> None:
    assert pareto_front(SWEEP) == [SLOW, MID, FAST]
    twin = point(60, 12.0, 0.55)
    front = pareto_front([*SWEEP, twin])
    assert DOMINATED not in front and MID in front and twin in front
    assert pareto_front([point(1, 5.0, 0.5), point(2, 5.0, 0.6)]) == [point(2, 5.0, 0.6)]  # same FPS, more accurate


def test_target_met_by_several_picks_the_most_accurate() -> None:
    rec = recommend(SWEEP, target_fps=10.0, max_map_drop=1.0)
    assert rec.choice is MID and rec.rule == "target-fps"
    assert "10 FPS" in rec.reason and "top-N 50" in rec.reason and "0.5500" in rec.reason


def test_target_met_by_none_falls_back_to_fastest_within_the_drop() -> None:
    rec = recommend(SWEEP, target_fps=25.0, max_map_drop=5.0)  # 0.55 is exactly 5 points below 0.60
    assert rec.choice is MID and rec.rule == "max-map-drop"
    assert rec.reason.startswith("no setting reaches 25 FPS") and "0.6000" in rec.reason
    assert recommend(SWEEP, target_fps=25.0, max_map_drop=4.9).choice is SLOW
    assert recommend(SWEEP, target_fps=None, max_map_drop=20.0).choice is FAST
    assert "reaches" not in recommend(SWEEP, None, 1.0).reason


def test_ties_go_to_the_other_measure_then_the_smaller_top_n() -> None:
    faster_twin = point(100, 15.0, 0.55)
    assert recommend([MID, faster_twin, FAST], 10.0, 1.0).choice is faster_twin
    same = [point(200, 12.0, 0.55), point(40, 12.0, 0.55)]
    assert recommend(same, 10.0, 1.0).choice.setting.top_n == 40
    assert recommend(same, None, 0.0).choice.setting.top_n == 40
    accurate_twin = point(400, 20.0, 0.45)
    assert recommend([FAST, accurate_twin, SLOW], None, 20.0).choice is accurate_twin


def test_accuracy_axis_names_the_dataset_and_a_narrowed_class_list() -> None:
    signs = accuracy_label("voc:data/roadsigns", "data/roadsigns/val.txt", list(LABELS[1:]))
    assert signs == "mAP@0.5 on roadsigns-val"
    assert accuracy_label("coco:data/pseudo/val.json", None, ["car"]) == "mAP@0.5 on pseudo-val (car)"


def test_recommend_needs_measurements() -> None:
    with pytest.raises(ValueError):
        recommend([], 10.0, 1.0)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    return {"voc": write_tiny_voc(tmp_path / "tiny"), "clip": write_video(tmp_path / "clip.avi", frames=4),
            "out": tmp_path / "tune", "log": tmp_path / "benchmarks.csv", "config": tmp_path / "tuned.yaml"}


def argv(inputs: dict[str, Path], *extra: str) -> list[str]:
    return ["--clip", str(inputs["clip"]), "--data", f"voc:{inputs['voc']}", "--out", str(inputs["out"]),
            "--benchmark-log", str(inputs["log"]), *extra, *RANDOM_MODEL, "output.codec=mjpg"]


def test_two_point_sweep_writes_results_config_and_log(inputs: dict[str, Path], capsys) -> None:
    code = main(argv(inputs, "--top-n", "5,20", "--repeats", "1", "--frames", "3", "--target-fps", "0.001",
                     "--write-config", str(inputs["config"])))
    assert code == 0
    with (inputs["out"] / "tune.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["top_n"]) for r in rows] == [5, 20]
    assert all(float(r["pipeline_fps_median"]) > 0 and float(r["model_fps_min"]) > 0 for r in rows)
    assert {"map50", "ap50_car", "ap50_stop_sign", "pipeline_fps_max"} <= set(rows[0])
    report = json.loads((inputs["out"] / "tune.json").read_text())
    assert [m["top_n"] for m in report["measurements"]] == [5, 20]
    assert any(m["pareto"] for m in report["measurements"])
    chosen = report["recommendation"]
    assert chosen["rule"] == "target-fps" and chosen["top_n"] in (5, 20) and report["reason"]
    assert (inputs["out"] / "tune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tuned = load_pipeline_config(inputs["config"])
    assert tuned.model.top_n == chosen["top_n"] and tuned.model.weights == "random"
    assert tuned.model.workers == 0  # auto stays auto: the file sizes itself to the machine that runs it
    assert inputs["config"].read_text().startswith("# Tuned by driving-detect tune")
    logged = read_records(inputs["log"])
    assert len(logged) == 4 and {r["kind"] for r in logged} == {"tune"}
    assert sorted((int(r["top_n"]), r["variant"]) for r in logged) == [
        (5, "model-only"), (5, "pipeline"), (20, "model-only"), (20, "pipeline")]
    assert all(0.0 <= float(r["map50"]) <= 1.0 for r in logged)
    assert "recommended by rule target-fps" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [
    ["--top-n", "5,x"],
    ["--top-n", "0"],
    ["--backends", "torch,tensorrt"],
    ["--frames", "0"],
    ["--target-fps", "-1"],
    ["model.nonsense=1"],
    ["--data", "voc:/nonexistent/dataset"],
    ["--clip", "/nonexistent/clip.avi"],
])
def test_bad_input_exits_2_with_one_line(inputs: dict[str, Path], extra: list[str], capsys) -> None:
    try:
        code = main(argv(inputs, *extra))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not inputs["log"].exists()
