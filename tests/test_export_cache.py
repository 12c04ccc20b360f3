"""The export cache behind backend=auto: a hit reuses the file, any baked-in setting makes a new one, a corrupt
file is rebuilt with one warning, and an unwritable cache is one error line."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import onnx
import pytest

from commands.export import main as export_main
from commands.stream import main as stream_main
from detector import export_cache
from detector.graph import read_metadata
from detector.calibration import (DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_FRAMES, CalibrationError,
                                  calibration_missing, calibration_paths, fingerprint, read_frames)
from detector.config import DRIVING_MODELS, ModelConfig
from detector.datasets import DataSource
from detector.export_cache import (ExportCacheError, cached_graph, export_graph, int8_unavailable, ranges_file,
                                   save_ranges, saved_ranges)
from detector.runtime import probe_machine
from detector.weights import weights_file
from tests.conftest import RANDOM_MODEL, shared_data, write_tiny_voc, write_video


SHIPPED = [name for name in DRIVING_MODELS if weights_file(name, "default").exists()]  # their int8 ranges ship too


def tiny(tmp_path: Path, **overrides) -> ModelConfig:
    values = dict(name="fasterrcnn_mobilenet_v3_large_320_fpn", weights="random", top_n=20, min_size=96,
                  max_size=128, backend="onnx", precision="fp32", device="cpu", cache_dir=str(tmp_path / "cache"))
    return ModelConfig(**{**values, **overrides})


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every export the cache makes, in order."""
    made: list[Path] = []
    real = export_cache.export

    def counting(*args, **kwargs):
        made.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(export_cache, "export", counting)
    return made


def test_a_second_use_reuses_the_file_and_any_baked_in_setting_makes_another(tmp_path, exports, monkeypatch):
    first = cached_graph(tiny(tmp_path))
    assert cached_graph(tiny(tmp_path)) == first and len(exports) == 1
    assert read_metadata(first).top_n == 20
    other_top_n = cached_graph(tiny(tmp_path, top_n=30))
    int8 = cached_graph(tiny(tmp_path, calibration=[DataSource(f"voc:{write_tiny_voc(tmp_path / 'voc')}")]), "int8")
    assert len({first, other_top_n, int8}) == 3 and read_metadata(int8).precision == "int8"
    monkeypatch.setattr(export_cache, "EXPORTER_VERSION", export_cache.EXPORTER_VERSION + 1)
    assert cached_graph(tiny(tmp_path)) not in (first, other_top_n, int8)
    assert len(exports) == 4
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".partial")]


def test_int8_is_keyed_by_its_calibration_frames_and_missing_ones_are_an_error(tmp_path, exports):
    voc = write_tiny_voc(tmp_path / "voc")
    cfg = tiny(tmp_path, calibration=[DataSource(f"voc:{voc}")], precision="int8")
    first = cached_graph(cfg, "int8")
    assert cached_graph(cfg, "int8") == first and len(exports) == 1
    assert cached_graph(tiny(tmp_path, calibration=[DataSource(f"voc:{voc}")], calibration_frames=2), "int8") != first
    (voc / "images" / "c.jpg").write_bytes((voc / "images" / "c.jpg").read_bytes() + b"\0")  # the set changed
    assert cached_graph(cfg, "int8") != first and len(exports) == 3
    with pytest.raises(CalibrationError, match="does not exist"):
        cached_graph(tiny(tmp_path, calibration=[DataSource(f"voc:{tmp_path / 'nowhere'}")]), "int8")


def test_saved_ranges_rebuild_the_int8_file_byte_for_byte_and_only_for_their_own_graph(tmp_path, caplog):
    """What ships with the bundled model: ranges saved from one calibration give the same int8 file as the frames,
    without them; another graph or calibration set does not take them."""
    voc = write_tiny_voc(tmp_path / "voc")
    cfg = tiny(tmp_path, calibration=[DataSource(f"voc:{voc}")], precision="int8")
    path = tmp_path / "ranges.json"
    ranges = save_ranges(cfg, path)
    fingerprint_, read_back = saved_ranges(cfg, path)
    assert read_back == ranges
    frames = calibration_paths(cfg.calibration, cfg.calibration_frames)
    assert fingerprint_ == fingerprint(frames)
    export_graph(cfg, tmp_path / "frames.onnx", "int8", read_frames(frames))
    export_graph(cfg, tmp_path / "ranges.onnx", "int8", ranges)
    assert (tmp_path / "frames.onnx").read_bytes() == (tmp_path / "ranges.onnx").read_bytes()
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(tmp_path / "ranges.onnx")).graph.node)
    assert saved_ranges(tiny(tmp_path, calibration=cfg.calibration, top_n=30), path) is None
    assert saved_ranges(tiny(tmp_path, calibration=cfg.calibration, calibration_frames=2), path) is None
    assert saved_ranges(tiny(tmp_path), path) is None  # the default calibration set, not this one
    with pytest.raises(CalibrationError, match="another fp32 graph"):
        export_graph(tiny(tmp_path, top_n=30), tmp_path / "other.onnx", "int8", ranges)
    path.write_text("{not json")
    caplog.clear()
    assert saved_ranges(cfg, path) is None
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "ignoring the saved int8 ranges" in
            r.getMessage()]


def test_ranges_that_belong_to_another_graph_fall_back_to_the_frames(tmp_path, monkeypatch, caplog):
    voc = write_tiny_voc(tmp_path / "voc")
    cfg = tiny(tmp_path, calibration=[DataSource(f"voc:{voc}")], precision="int8")
    path = tmp_path / "ranges.json"
    save_ranges(cfg, path)
    saved = json.loads(path.read_text())
    saved["ranges"]["graph_sha256"] = "0" * 64  # as if traced by another exporter
    path.write_text(json.dumps(saved))
    monkeypatch.setattr(export_cache, "ranges_file", lambda name: path)
    built = cached_graph(cfg, "int8")
    assert read_metadata(built).precision == "int8"
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "another fp32 graph" in r.getMessage()
            and "calibrating on the frames" in r.getMessage()]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_bundled_model_gets_int8_without_the_calibration_data(tmp_path, monkeypatch, name):
    """A new user has the bundled weights but not ../shared/data: the shipped ranges still give the model its int8
    graph (and the same cache entry the frames would)."""
    monkeypatch.chdir(tmp_path)  # the default calibration set's relative paths lead nowhere from here
    cfg = ModelConfig(name=name, cache_dir=str(tmp_path / "cache"))
    assert calibration_missing(cfg.calibration)
    assert saved_ranges(cfg) is not None, (
        f"{ranges_file(name).name} does not fit the bundled graph of {name} (weights, exporter version or defaults "
        f"changed): regenerate it with `driving-detect export --model {name} --precision int8 "
        f"--out /tmp/int8.onnx --save-ranges detector/weights/{ranges_file(name).name}`")
    assert int8_unavailable(cfg) == "" and probe_machine(cfg).no_calibration == ""
    path = cached_graph(cfg, "int8")
    assert read_metadata(path).precision == "int8"
    assert int8_unavailable(ModelConfig(name=name, top_n=100)) != ""  # another graph: the data would be needed


@pytest.mark.parametrize("name", SHIPPED)
def test_the_bundled_ranges_come_from_the_default_calibration_set(shared_data, name):
    fingerprint_, _ = saved_ranges(ModelConfig(name=name))
    assert fingerprint_ == fingerprint(calibration_paths(list(DEFAULT_CALIBRATION), DEFAULT_CALIBRATION_FRAMES))


def test_save_ranges_needs_int8(tmp_path, capsys):
    args = ["--model", "driving_mobilenet_v2_fpn", "--out", str(tmp_path / "m.onnx"), "--save-ranges",
            str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as exit_:
        export_main(args)
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: --save-ranges needs --precision int8")
    assert not (tmp_path / "r.json").exists()


def test_other_weights_make_another_file(tmp_path, exports):
    from detector.weights import BUNDLED_WEIGHTS

    weights = tmp_path / "w.pt"
    weights.write_bytes(BUNDLED_WEIGHTS.read_bytes())
    cfg = tiny(tmp_path, name="driving_mobilenet_v2_fpn", weights=str(weights), min_size=128, max_size=160)
    first = cached_graph(cfg)
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # same size, other bytes: another sha256
    assert cached_graph(cfg) != first and len(exports) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_cached_file_is_rebuilt_with_one_warning(tmp_path, exports, caplog, damage):
    path = cached_graph(tiny(tmp_path))
    data = path.read_bytes()
    path.write_bytes(b"not an onnx file" * 10 if damage == "garbage" else data[: len(data) // 2])
    caplog.clear()
    assert cached_graph(tiny(tmp_path)) == path and len(exports) == 2
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "detector.export_cache"]
    assert len(warnings) == 1 and "rebuilding" in warnings[0]
    assert read_metadata(path).top_n == 20


def test_an_unwritable_cache_is_an_error_and_the_command_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ExportCacheError, match="cannot write the export cache"):
        cached_graph(tiny(tmp_path, cache_dir=str(blocker / "cache")))
    clip = write_video(tmp_path / "clip.avi", frames=3)
    args = ["--source", str(clip), "--quiet", *RANDOM_MODEL, "model.backend=onnx", f"model.cache_dir={blocker}/c",
            f"output.dir={tmp_path / 'out'}", f"output.benchmark_csv={tmp_path / 'log.csv'}"]
    assert stream_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the export cache") and err.count("\n") == 1


def test_the_default_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(export_cache.CACHE_ENV, str(tmp_path / "mine"))
    assert export_cache.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(export_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert export_cache.default_cache_dir() == tmp_path / "xdg" / "driving-detect"
    assert os.environ.get(export_cache.CACHE_ENV) is None
