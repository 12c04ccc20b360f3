"""bench.plot (driving-detect plot) on a synthetic shared log of mixed kinds, and its errors for logs it cannot plot."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.plot import panels
from commands.plot import main
from stream.record import BenchmarkRecord, append_csv, read_records, write_record

PIPELINE_STAGES = ("capture", "inference", "nms", "render", "sink")


def record(kind: str, backend: str, top_n: int, variant: str, fps: float, map50: float | None = None,
           stages: tuple[str, ...] = PIPELINE_STAGES) -> BenchmarkRecord:
    ms = 1000 / fps
    return BenchmarkRecord(
        kind=kind, source="clip.mp4", model="fasterrcnn_mobilenet_v3_large_320_fpn", weights="random",
        backend=backend, device="cpu", top_n=top_n, frames=30, seconds=30 / fps, fps=fps,
        stages={s: {"mean": ms / len(stages), "p50": ms / len(stages), "p95": ms} for s in stages},
        latency={"mean": ms * 2, "p50": ms * 2, "p95": ms * 3}, variant=variant, map50=map50,
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Stream, benchmark (both backends, two repeats) and tune rows in one log, as the commands write it."""
    path = tmp_path / "benchmarks.csv"
    records = [record("stream", "torch", 100, "policy=lossless", 4.0)]
    for repeat in range(2):
        for backend, speed in (("torch", 1.0), ("onnx", 1.6)):
            records.append(record("benchmark", backend, 100, "model-only", 6.0 * speed + repeat, stages=("model-only",)))
            records.append(record("benchmark", backend, 100, "pipeline", 5.0 * speed + repeat))
    for top_n, fps, map50 in ((10, 9.0, 0.41), (50, 7.0, 0.52), (300, 4.5, 0.55)):
        records.append(record("tune", "torch", top_n, "model-only", fps * 1.2, map50, stages=("model-only",)))
        records.append(record("tune", "torch", top_n, "pipeline", fps, map50))
    for r in records:
        write_record(r, None, path)
    return path


def test_mixed_log_plots_every_panel(log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "plots" / "runs.png"
    assert main([str(log), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == str(out)
    names = [draw.__name__ for draw, _ in panels(read_records(log))]
    assert names == ["fps_panel", "stage_panel", "latency_panel", "tune_panel"]


def test_kind_and_last_select_rows(log: Path, capsys) -> None:
    assert main([str(log), "--kind", "benchmark", "--last", "2"]) == 0
    assert Path(capsys.readouterr().out.strip()) == log.with_suffix(".png")
    assert log.with_suffix(".png").stat().st_size > 0
    benchmark_rows = [r for r in read_records(log) if r["kind"] == "benchmark"]
    assert "tune_panel" not in [draw.__name__ for draw, _ in panels(benchmark_rows)]


def test_rows_without_stage_or_latency_columns_still_plot(tmp_path: Path) -> None:
    path = tmp_path / "minimal.csv"
    append_csv(path, {"kind": "stream", "backend": "torch", "fps": 3.5})
    append_csv(path, {"kind": "tune", "backend": "onnx", "fps": 2.0, "top_n": 50, "map50": 0.3})
    rows = read_records(path)
    assert [draw.__name__ for draw, _ in panels(rows)] == ["fps_panel", "tune_panel"]
    assert main([str(path), "--out", str(tmp_path / "minimal.png")]) == 0
    assert (tmp_path / "minimal.png").stat().st_size > 0


@pytest.mark.parametrize("content, extra", [
    ("", []),
    (None, []),
    ("a,b\n1,2\n", []),
    ("kind,fps\nstream,fast\n", []),
    ("kind,fps\nstream,3.0\n", ["--kind", "tune"]),
    ("kind,fps\nstream,3.0\n", ["--last", "0"]),
])
def test_unplottable_log_exits_2_with_one_line(tmp_path: Path, content: str | None, extra: list[str], capsys) -> None:
    path = tmp_path / "log.csv"
    if content is not None:
        path.write_text(content)
    try:
        code = main([str(path), *extra])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not path.with_suffix(".png").exists()


def test_runs_at_two_resolutions_of_one_clip_are_two_named_settings_and_batch_rows_plot(tmp_path: Path) -> None:
    from bench.plot import setting

    path = tmp_path / "log.csv"
    for size, fps in (("640x360", 20.0), ("1920x1080", 5.0)):
        r = record("stream", "openvino", 300, "policy=lossless", fps)
        r.source, r.source_size = "/data/seattlestreet1.mp4", size
        write_record(r, None, path)
    write_record(record("batch", "openvino", 300, "workers=2 threads=1", 30.0, stages=()), None, path)
    rows = read_records(path)
    assert [setting(r)[0] for r in rows[:2]] == ["seattlestreet1.mp4 640x360", "seattlestreet1.mp4 1920x1080"]
    assert len({setting(r) for r in rows}) == 3
    assert main([str(path), "--kind", "batch", "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
