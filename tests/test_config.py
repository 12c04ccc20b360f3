"""The one config loader: YAML files, dotted overrides, and errors that name the key and the valid values."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from commands import export
from core.config import ConfigError, parse_overrides, with_overrides
from detector.config import ExportConfig, ModelConfig
from detector.models import DEFAULT_SCORE_THRESH, DEFAULT_TOP_N
from stream.config import CONFIG_DIR, load_pipeline_config
from tests.conftest import REPO

PIPELINE_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if not p.name.startswith("train"))


@pytest.mark.parametrize("path", PIPELINE_CONFIGS)
def test_every_pipeline_config_in_the_repo_loads(path):
    cfg = load_pipeline_config(path)
    assert cfg.model.top_n >= 1 and 0 < cfg.nms.iou <= 1


@pytest.mark.parametrize("path", PIPELINE_CONFIGS)
def test_shipped_configs_use_the_candidate_floor_the_exporter_bakes_in(path):
    # An ONNX graph exported with the command in an onnx-*.yaml must match that config's model keys.
    exported = export.parse_args(["--model", "driving_mobilenet_v2_fpn", "--out", "x.onnx"])
    model = load_pipeline_config(path).model
    assert model.score_thresh == exported.score_thresh == DEFAULT_SCORE_THRESH
    assert model.top_n == exported.top_n == DEFAULT_TOP_N  # one top-N default: config, builders and exporter


def test_overrides_use_dotted_keys_and_yaml_values():
    cfg = load_pipeline_config(None, ["model.top_n=50", "nms.classes=[car, person]", "source.policy=latest",
                                      "nms.class_thresh.person=0.7", "render.hud=false"])
    assert cfg.model.top_n == 50 and cfg.nms.classes == ["car", "person"] and cfg.source.policy == "latest"
    assert cfg.nms.class_thresh == {"person": 0.7} and cfg.render.hud is False


@pytest.mark.parametrize("override, message", [
    ("model.topn=5", "unknown key 'model.topn' (did you mean 'model.top_n'?)"),
    ("model.nonsense=1", "unknown key 'model.nonsense'; valid keys: model.name"),
    ("model.backend=trt", "valid values: auto, torch, onnx, openvino"),
    ("model.precision=int4", "valid values: auto, fp32, bf16, fp16, int8"),
    ("model.name=yolo", "valid values: driving_mobilenet_v2_fpn"),
    ("model.top_n=0", "'model.top_n' must be >= 1"),
    ("model.top_n=many", "'model.top_n' must be int"),
    ("nms.classes=[cow]", "unknown class 'cow'"),
    ("source.queue_size=0", "'source.queue_size' must be >= 1"),
    ("source=3", "'source' must be a section"),
    ("nms.score_thresh=2", "'nms.score_thresh' must be in [0, 1], got 2.0"),
    ("nms.score_thresh=-5", "'nms.score_thresh' must be in [0, 1], got -5.0"),
    ("nms.iou=0", "'nms.iou' must be in (0, 1], got 0.0"),
    ("nms.class_thresh.car=1.5", "'nms.class_thresh.car' must be in [0, 1], got 1.5"),
    ("model.score_thresh=1", "'model.score_thresh' must be in [0, 1), got 1.0"),
    ("model.min_size=-1", "'model.min_size' must be >= 0 (0: the model's default), got -1"),
    ("model.max_size=-320", "'model.max_size' must be >= 0 (0: the model's default), got -320"),
    ("model.onnx.intra_op_threads=-2", "'model.onnx.intra_op_threads' must be >= 0"),
    ("source.fallback_fps=0", "'source.fallback_fps' must be > 0, got 0.0"),
    ("output.log_every=-1", "'output.log_every' must be >= 0 (seconds), got -1.0"),
    ("track.min_iou=2", "'track.min_iou' must be in [0, 1], got 2.0"),
    ("serve.quality=0", "'serve.quality' must be in 1..100, got 0"),
    ("model.full_size_every=0", "'model.full_size_every' must be >= 1, got 0"),
    ("model.full_size_every=often", "'model.full_size_every' must be int"),
    ("model.interval=0", "'model.interval' must be >= 1 or auto, got 0"),
])
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_pipeline_config(None, [override])


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["model.top_n"])


def test_every_bad_key_and_value_of_the_file_and_the_overrides_is_reported_at_once(tmp_path):
    path = tmp_path / "typos.yaml"
    path.write_text("model:\n  topn: 5\n  backend: trt\nnms:\n  iou: 0.5\n  scor_thresh: 0.3\ntrack:\n  trail: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline_config(path, ["source.queue_size=0", "model.top_n", "render.hud=maybe"])
    assert sorted(caught.value.problems) == sorted([
        "override 'model.top_n' is not key=value",
        "unknown key 'model.topn' (did you mean 'model.top_n'?)",
        "'model.backend' = 'trt' is not valid; valid values: auto, torch, onnx, openvino",
        "unknown key 'nms.scor_thresh' (did you mean 'nms.score_thresh'?)",
        "'track.trail' must be >= 0, got -1",
        "'source.queue_size' must be >= 1, got 0",
        "'render.hud' must be true or false, got 'maybe'",
    ])
    message = str(caught.value)
    assert message.startswith("7 config errors: ") and "\n" not in message
    assert all(problem in message for problem in caught.value.problems)


def test_a_section_reports_all_its_bad_values_and_unknown_classes_at_once():
    with pytest.raises(ConfigError) as caught:
        load_pipeline_config(None, ["nms.iou=0", "nms.score_thresh=2", "nms.classes=[car, cow, pig]"])
    assert caught.value.problems == [
        "'nms.iou' must be in (0, 1], got 0.0", "'nms.score_thresh' must be in [0, 1], got 2.0",
        "'nms' names unknown classes 'cow', 'pig'; valid classes: car, truck, bus, motorcycle, bicycle, person, "
        "traffic_light, stop_sign, speed_limit, crosswalk_sign"]


def test_overrides_apply_to_a_config_built_in_code_and_are_checked_the_same_way():
    built = ExportConfig(ModelConfig(top_n=10, weights="random"))
    assert with_overrides(built, ["model.top_n=5"]).model == ModelConfig(top_n=5, weights="random")
    with pytest.raises(ConfigError) as caught:
        with_overrides(built, ["model.topn=5", "model.min_size=-1"])
    assert caught.value.problems == ["unknown key 'model.topn' (did you mean 'model.top_n'?)",
                                     "'model.min_size' must be >= 0 (0: the model's default), got -1"]


def test_one_bad_key_is_the_whole_message():
    with pytest.raises(ConfigError) as caught:
        load_pipeline_config(None, ["nms.iuo=0.3"])
    assert str(caught.value) == "unknown key 'nms.iuo' (did you mean 'nms.iou'?)"


def test_bad_yaml_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_pipeline_config(tmp_path / "missing.yaml")


def test_the_config_schemas_load_without_torch():
    """Every config dataclass imports light, so a command checks its config before loading torch."""
    code = ("import sys, stream.config, fleet.config, training.config\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'openvino', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_interval_auto_needs_no_tracker_but_a_fixed_k_does():
    """``model.interval: auto`` is the default, so turning tracking off must not make the default config invalid
    (auto then detects every frame); a fixed k > 1 has nothing to fill the skipped frames and is an error."""
    assert load_pipeline_config(None, ["track.enabled=false"]).model.interval == "auto"
    with pytest.raises(ConfigError, match=re.escape("'model.interval' other than 1 or auto needs 'track.enabled'")):
        load_pipeline_config(None, ["track.enabled=false", "model.interval=2"])
