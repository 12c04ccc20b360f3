"""The benchmark script measures every variant and writes one record each (timings themselves are not asserted)."""
from __future__ import annotations

import shutil

import pytest

from bench import benchmark
from bench.choices import BACKENDS
from commands.benchmark import main
from stream.record import read_records
from tests.conftest import RANDOM_MODEL, write_video


def test_benchmark_measures_each_variant_and_logs_records(tmp_path, capsys, caplog):
    clip = write_video(tmp_path / "clip.avi", frames=4)
    log = tmp_path / "log.csv"
    code = main(["--source", str(clip), "--frames", "3", "--repeats", "2", "--benchmark-log", str(log),
                           *RANDOM_MODEL, "output.codec=mjpg"])
    assert code == 0
    rows = read_records(log)
    assert sorted(r["variant"] for r in rows) == sorted(list(benchmark.VARIANTS) * 2)
    assert all(r["kind"] == "benchmark" and float(r["fps"]) > 0 and r["frames"] == "3" for r in rows)
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + len(benchmark.VARIANTS) + 1 and "pipeline ceiling" in table.pop()
    assert table[1].split()[-1] == "1.00x"  # model-only is its own reference
    assert "CPU ms" in table[0] and all(float(line.split()[-3]) > 0 for line in table[1:])
    # a file's default detects every 2nd frame: said once, since the pipeline then does less work than model-only
    warnings = [r.message for r in caplog.records if "ran the detector on 2 of 3 frames" in r.message]
    assert len(warnings) == 1 and "model.interval=1" in warnings[0]


def test_benchmark_at_interval_1_says_nothing_about_skipped_frames(tmp_path, caplog):
    clip = write_video(tmp_path / "clip.avi", frames=3)
    assert main(["--source", str(clip), "--frames", "3", "--repeats", "1", "--benchmark-log",
                 str(tmp_path / "log.csv"), *RANDOM_MODEL, "output.codec=mjpg", "model.interval=1"]) == 0
    assert not [r for r in caplog.records if "ran the detector on" in r.message]


def test_replay_hands_back_the_backends_detections_without_running_it():
    """The replay variant measures the pipeline without inference: same detections, the model never called."""
    import numpy as np

    from core.detections import Detections

    class Counting:
        name, device, class_map, calls = "fake", "cpu", np.arange(11), 0

        def __call__(self, image):
            self.calls += 1
            return Detections(np.array([[0, 0, image[0, 0, 0] + 1, 5]], np.float32), np.ones(1, np.float32),
                              np.ones(1, np.int64))

    backend = Counting()
    images = [np.full((8, 8, 3), i, np.uint8) for i in range(3)]
    replay = benchmark.ReplayBackend(backend, images)
    got = [replay(images[0]).boxes[0, 2] for _ in range(4)]
    assert backend.calls == 3 and replay.name == "fake"
    assert got == [1, 2, 3, 1]  # in turn, then round again


def test_benchmark_bad_source_exits_2(tmp_path, capsys):
    assert main(["--source", str(tmp_path / "none.mp4"), *RANDOM_MODEL]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_backend_names_set_backend_and_precision(tmp_path):
    from stream.config import load_pipeline_config

    base = load_pipeline_config(None, RANDOM_MODEL)
    got = {name: benchmark.backend_config(base, name, tmp_path).model for name in BACKENDS}
    assert {n: (m.backend, m.precision) for n, m in got.items()} == {
        "auto": ("auto", "auto"), "torch": ("torch", "fp32"), "torch-bf16": ("torch", "bf16"),
        "torch-fp16": ("torch", "fp16"), "onnx": ("onnx", "fp32"), "onnx-fp16": ("onnx", "fp16"),
        "onnx-int8": ("onnx", "int8"), "openvino": ("openvino", "fp32"),
        "openvino-bf16": ("openvino", "bf16"), "openvino-int8": ("openvino", "int8")}
    assert all(m.cache_dir == str(tmp_path) and m.onnx_path == "" for m in got.values())


def test_output_video_false_measures_without_writing_a_video(tmp_path):
    """``output.video=false`` is how the benchmark separates the encoder's share from the rest of the pipeline."""
    from detector.backend import build_backend
    from stream.config import load_pipeline_config

    clip = write_video(tmp_path / "clip.avi", frames=4)
    backend = build_backend(load_pipeline_config(None, RANDOM_MODEL).model)
    for video in (True, False):
        out = tmp_path / f"video-{video}"
        out.mkdir()
        cfg = load_pipeline_config(None, [*RANDOM_MODEL, f"output.video={str(video).lower()}", "output.codec=mjpg"])
        record = benchmark.pipeline(cfg, str(clip), backend, 3, out)
        fps, ms = benchmark.serial(cfg, str(clip), backend, 3, out / "serial.avi")
        assert record.frames == 3 and len(ms) == 3 and fps > 0
        assert (out / "pipeline.mp4").exists() is video and (out / "serial.avi").exists() is video
        assert len((out / "pipeline.jsonl").read_text().splitlines()) == 3


def test_ratio_is_taken_per_repeat_so_drift_between_repeats_cancels():
    """Repeat 2 ran on a machine twice as fast for both variants: each repeat's own ratio is what counts."""
    results = {("640x360", "m", "b", "model-only"): [10.0, 20.0], ("640x360", "m", "b", "pipeline"): [9.0, 10.0]}
    row = benchmark.table(results).splitlines()[2].split()
    assert row[-2:] == ["0.50-0.90", "0.70x"]  # the ratio of medians would be 0.63x


def test_the_ceiling_is_inference_cpu_over_all_cpu():
    """63.5 ms of CPU for inference and 9.4 for everything else: on 2 busy cores the pipeline can't pass 0.87x."""
    cpu = {("1x1", "m", "b", "model-only"): [60.0, 63.5, 70.0], ("1x1", "m", "b", "replay"): [9.4, 9.0, 12.0],
           ("1x1", "m", "b", "pipeline"): [80.0, 80.0, 80.0], ("1x1", "m", "c", "model-only"): [5.0]}
    line, = benchmark.ceilings(cpu).splitlines()  # backend c has no replay: no line
    assert line.startswith("1x1 m b: pipeline ceiling on a CPU-bound machine 0.87x of model-only")
    assert "inference 63.5 ms" in line and "everything else 9.4" in line


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs FFmpeg (Debian package ffmpeg; .ci/run installs it)")
def test_sizes_measure_the_source_scaled_to_each_resolution_side_by_side(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.avi", frames=4)
    log = tmp_path / "log.csv"
    assert main(["--source", str(clip), "--max-frames", "3", "--repeats", "1", "--sizes", "96x64,192x128",
                 "--benchmark-log", str(log), *RANDOM_MODEL, "output.codec=mjpg"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:] if line.split()[0] in ("96x64", "192x128") and "ceiling" not in line]
    assert [r[0] for r in rows] == ["96x64"] * len(benchmark.VARIANTS) + ["192x128"] * len(benchmark.VARIANTS)
    assert sorted(r["source_size"] for r in read_records(log)) == sorted(["96x64", "192x128"] * len(benchmark.VARIANTS))
    assert sum("pipeline ceiling" in line for line in lines) == 2


def test_a_bad_size_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--source", str(write_video(tmp_path / "c.avi", 2)), "--sizes", "1920x0", *RANDOM_MODEL])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: argument --sizes: '1920x0' is not a size")
