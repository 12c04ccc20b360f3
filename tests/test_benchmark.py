"""The benchmark script measures every variant and writes one record each (timings themselves are not asserted)."""
from __future__ import annotations

from bench import benchmark
from commands.benchmark import main
from stream.record import read_records
from tests.conftest import RANDOM_MODEL, write_video


def test_benchmark_measures_each_variant_and_logs_records(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.avi", frames=4)
    log = tmp_path / "log.csv"
    code = main(["--source", str(clip), "--frames", "3", "--repeats", "2", "--benchmark-log", str(log),
                           *RANDOM_MODEL, "output.codecs=[MJPG]"])
    assert code == 0
    rows = read_records(log)
    assert sorted(r["variant"] for r in rows) == sorted(list(benchmark.VARIANTS) * 2)
    assert all(r["kind"] == "benchmark" and float(r["fps"]) > 0 and r["frames"] == "3" for r in rows)
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + len(benchmark.VARIANTS)
    assert table[1].split()[-1] == "1.00x"  # model-only is its own reference


def test_benchmark_bad_source_exits_2(tmp_path, capsys):
    assert main(["--source", str(tmp_path / "none.mp4"), *RANDOM_MODEL]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_onnx_int8_exports_once_and_again_when_the_exporter_changes(tmp_path):
    """Cached exports are keyed by settings and precision, and redone when they predate the exporter."""
    import os

    from detector import export
    from detector.backend_onnx import read_metadata
    from stream.config import load_pipeline_config

    cfg = benchmark.backend_config(load_pipeline_config(None, RANDOM_MODEL), "onnx-int8", tmp_path)
    path = tmp_path / cfg.model.onnx_path.rsplit("/", 1)[-1]
    assert cfg.model.backend == "onnx" and path.name.endswith("-int8.onnx")
    assert read_metadata(path).precision == "int8"
    old = os.path.getmtime(export.__file__) - 10
    os.utime(path, (old, old))
    benchmark.backend_config(load_pipeline_config(None, RANDOM_MODEL), "onnx-int8", tmp_path)
    assert os.path.getmtime(path) > old, "an export older than the exporter must be redone"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
