"""The export cache behind backend=auto: a hit reuses the file, any baked-in setting makes a new one, a corrupt
file is rebuilt with one warning, and an unwritable cache is one error line."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from commands.stream import main as stream_main
from detector import export_cache
from detector.backend_onnx import read_metadata
from detector.calibration import CalibrationError
from detector.config import ModelConfig
from detector.datasets import DataSource
from detector.export_cache import ExportCacheError, cached_graph
from tests.conftest import RANDOM_MODEL, write_tiny_voc, write_video


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
