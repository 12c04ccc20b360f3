"""``driving-detect batch`` on an embedded local Ray (one session for the module): outputs identical to
``run_stream.py``, resume, a corrupt clip among good ones, bad input, and the project importing without Ray."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

import run_stream
from commands import batch
from fleet.config import BatchError, fingerprint, load_fleet_config, pipeline_config, worker_threads
from fleet.manifest import Manifest
from fleet.sources import expand_sources
from tests.conftest import RANDOM_MODEL, REPO, write_video

# The tiny model of RANDOM_MODEL with every candidate kept, so the JSONL has boxes to compare.
MODEL = [*RANDOM_MODEL, "model.score_thresh=0.0", "nms.score_thresh=0.0"]
CLIPS = {"a.avi": 8, "b.avi": 12, "c.avi": 10}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def seeded_weights(path: Path) -> Path:
    """Random weights from seed 0 as a file: ``model.weights=random`` draws new ones in every process."""
    import torch

    from core.labels import NUM_CLASSES
    from detector.models import build_detector

    torch.manual_seed(0)
    torch.save(build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", NUM_CLASSES).state_dict(), path)
    return path


def reference(clip: Path, tmp: Path, model: list[str]) -> Path:
    """The clip's detections as ``run_stream.py`` writes them."""
    out = tmp / "ref" / clip.name / "detections.jsonl"
    assert run_stream.main(["--source", str(clip), "--detections", str(out), "--benchmark-log", str(tmp / "log.csv"),
                            "--no-video", "--quiet", *model, f"output.dir={tmp / 'ref-out'}"]) == 0
    return out


def ray_auth_env(folder: Path) -> dict[str, str]:
    """Token auth with a token of the test's own, so no Ray of a test writes ``~/.ray`` or accepts strangers."""
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


@pytest.fixture(scope="module")
def embedded_ray():
    """One embedded Ray for the module (2 CPUs, 100 MB object store, no dashboard), shut down after it."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    saved = dict(os.environ)
    os.environ.update(ray_auth_env(temp))  # before Ray is imported: it reads the auth mode once
    ray = pytest.importorskip("ray", reason="the fleet extra (pip install -e '.[fleet]') is not installed")
    ray.init(num_cpus=2, object_store_memory=100 * 10**6, include_dashboard=False, _temp_dir=str(temp),
             logging_level="WARNING")
    yield ray
    ray.shutdown()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [*MODEL, f"model.weights={seeded_weights(tmp_path_factory.mktemp('weights') / 'seed0.pt')}"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, model) -> dict[str, tuple[Path, Path]]:
    """name -> (clip, run_stream.py's detections for it)."""
    tmp = tmp_path_factory.mktemp("clips")
    (tmp / "in").mkdir()
    made = {name: write_video(tmp / "in" / name, frames=n) for name, n in CLIPS.items()}
    return {name: (clip, reference(clip, tmp, model)) for name, clip in made.items()}


def run_batch_cli(sources: list[str], out: Path, model: list[str], *extra: str) -> int:
    return batch.main([*sources, "--out", str(out), "--quiet", *model, *extra, "batch.threads=1"])


@pytest.fixture(scope="module")
def first_run(embedded_ray, clips, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    return run_batch_cli([str(next(iter(clips.values()))[0].parent)], out, model), out


def test_every_file_gets_the_detections_run_stream_writes(first_run, clips):
    rc, out = first_run
    assert rc == 0
    for name, (_, ref) in clips.items():
        assert (out / name / "detections.jsonl").read_text() == ref.read_text()
        assert jsonl(ref) and any(line["boxes"] for line in jsonl(ref))
        record = json.loads((out / name / "benchmark.json").read_text())
        assert record["frames"] == CLIPS[name] and record["backend"] == "torch"
        assert record["config"]["model"]["workers"] == 1 and record["config"]["model"]["threads"] == 1
        assert not list((out / name).glob(".partial-*"))
        assert not (out / name / "annotated.mp4").exists() or (out / name / "annotated.mp4").stat().st_size > 0


def test_summary_has_a_row_per_file_and_one_fleet_record(first_run, clips):
    _, out = first_run
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["file"]: row for row in summary["files"]}
    assert set(rows) == set(CLIPS)
    for name, (_, ref) in clips.items():
        counts = Counter(label for line in jsonl(ref) for label in line["labels"])
        assert rows[name]["state"] == "done" and rows[name]["frames"] == CLIPS[name]
        assert rows[name]["detections"] == dict(counts) and rows[name]["error"] == ""
    csv_rows = (out / "summary.csv").read_text().splitlines()
    assert len(csv_rows) == 4 and csv_rows[0].startswith("file,source,state,frames,seconds,fps")
    assert any(column.startswith("det_") for column in csv_rows[0].split(","))
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["kind"] == "batch" and fleet["frames"] == sum(CLIPS.values()) and fleet["fps"] > 0
    log = (out / "benchmarks.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["stream"] * 3 + ["batch"]


def test_a_rerun_skips_every_finished_file(first_run, clips, model, capsys):
    _, out = first_run
    before = {name: (out / name / "detections.jsonl").stat().st_mtime_ns for name in CLIPS}
    manifest_lines = len((out / "manifest.jsonl").read_text().splitlines())
    capsys.readouterr()
    assert run_batch_cli([str(next(iter(clips.values()))[0].parent)], out, model) == 0
    assert "3 done earlier (skipped), 0 failed" in capsys.readouterr().out
    assert {name: (out / name / "detections.jsonl").stat().st_mtime_ns for name in CLIPS} == before
    assert len((out / "manifest.jsonl").read_text().splitlines()) == manifest_lines
    states = {row["file"]: row["state"] for row in json.loads((out / "summary.json").read_text())["files"]}
    assert states == dict.fromkeys(CLIPS, "done earlier")


def test_a_corrupt_clip_is_reported_and_the_others_finish(embedded_ray, clips, model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (clip, _) in clips.items():
        (folder / name).symlink_to(clip)
    (folder / "broken.avi").write_bytes(b"not a video at all")
    assert run_batch_cli([str(folder)], tmp_path / "out", model) == 1
    printed = capsys.readouterr().out
    assert "3 done" in printed and "1 failed" in printed
    assert f"failed: {folder / 'broken.avi'}: " in printed and "not a readable video" in printed
    manifest = Manifest(tmp_path / "out")
    assert manifest.last["broken.avi"]["state"] == "failed"
    assert "not a readable video" in manifest.last["broken.avi"]["error"]
    assert not (tmp_path / "out" / "broken.avi" / "detections.jsonl").exists()
    for name, (_, ref) in clips.items():
        assert manifest.last[name]["state"] == "done"
        assert (tmp_path / "out" / name / "detections.jsonl").read_text() == ref.read_text()


def test_weights_that_do_not_load_are_one_error_line(embedded_ray, clips, tmp_path, capsys):
    clip = str(next(iter(clips.values()))[0])
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"junk")
    assert run_batch_cli([clip], tmp_path / "out", [*MODEL, f"model.weights={weights}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the workers could not load the model: ") and "\n" not in err
    assert "w.pt" in err


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clip_to(t: Path) -> list[str]:
    return [str(write_video(t / "v.avi", 2)), "--out", str(t / "out")]


BAD_INPUTS = {  # case -> (argv from a temp folder, expected in the error line)
    "glob matching nothing": (lambda t: [str(t / "*.mp4"), "--out", str(t / "out")], "matches no video or image"),
    "missing file": (lambda t: [str(t / "nope.mp4"), "--out", str(t / "out")], "does not exist"),
    "unwritable output": (lambda t: [str(write_video(t / "v.avi", 2)), "--out", str(t / "v.avi" / "o")],
                          "cannot write"),
    "unreachable ray": (lambda t: [*clip_to(t), "--ray-address", f"127.0.0.1:{free_port()}"],
                        "cannot reach Ray at '127.0.0.1:"),
    "unknown batch key": (lambda t: [*clip_to(t), "batch.wokers=2"], "batch.wokers"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_error_line_and_exit_2(case, tmp_path, capsys):
    argv, expected = BAD_INPUTS[case]
    started = time.perf_counter()
    assert batch.main([*argv(tmp_path), "batch.connect_timeout=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert time.perf_counter() - started < 10


def test_without_ray_the_command_names_the_extra(tmp_path):
    clip = write_video(tmp_path / "v.avi", 2)
    code = ("import sys; sys.modules['ray'] = None\nfrom commands.main import main\n"
            f"sys.exit(main(['batch', {str(clip)!r}, '--out', {str(tmp_path / 'out')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("error: driving-detect batch needs Ray, which is not installed: "
                                                   "pip install -e '.[fleet]'")


def test_the_project_imports_without_loading_ray():
    """Every package, the fleet's and the batch command included: Ray is imported only when a batch runs."""
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for layer in ("core", "detector", "evaluation", "training", "tracking", "stream", "fleet",
                                   "bench", "commands")
                     for p in (REPO / layer).rglob("*.py") if p.name != "__main__.py")
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "fleet.batch" in modules and "commands.batch" in modules


def test_sources_expand_to_files_and_image_folders_with_their_relative_paths(tmp_path):
    (tmp_path / "trip" / "day1").mkdir(parents=True)
    (tmp_path / "trip" / "stills").mkdir()
    write_video(tmp_path / "trip" / "day1" / "x.avi", 2)
    write_video(tmp_path / "trip" / "y.avi", 2)
    import cv2
    import numpy as np

    for i in range(2):
        cv2.imwrite(str(tmp_path / "trip" / "stills" / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "trip" / "notes.txt").write_text("not a video")
    items = expand_sources([str(tmp_path / "trip")])
    assert [(Path(i.source).relative_to(tmp_path).as_posix(), i.rel) for i in items] == [
        ("trip/y.avi", "y.avi"), ("trip/day1/x.avi", "day1/x.avi"), ("trip/stills", "stills")]
    assert [i.rel for i in expand_sources([str(tmp_path / "trip" / "*" / "*.avi")])] == ["day1/x.avi"]
    assert [i.rel for i in expand_sources([str(tmp_path / "trip" / "stills" / "*.jpg")])] == ["stills"]
    assert [i.rel for i in expand_sources([str(tmp_path / "trip" / "y.avi")] * 2)] == ["y.avi"]
    (tmp_path / "other").mkdir()
    write_video(tmp_path / "other" / "y.avi", 2)
    with pytest.raises(BatchError, match="would both write 'y.avi/'"):
        expand_sources([str(tmp_path / "trip" / "y.avi"), str(tmp_path / "other" / "y.avi")])


def test_manifest_keeps_the_last_state_and_ignores_a_cut_line(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.append("a.mp4", "running")
    manifest.append("a.mp4", "done", fingerprint="f1")
    (tmp_path / "manifest.jsonl").open("a").write('{"file": "b.mp4", "sta')
    output = tmp_path / "a.mp4" / "detections.jsonl"
    reread = Manifest(tmp_path)
    assert reread.last["a.mp4"]["state"] == "done" and "b.mp4" not in reread.last
    assert reread.finished("a.mp4", "f1", [output]) is None  # its outputs are gone
    output.parent.mkdir()
    output.write_text("")
    assert reread.finished("a.mp4", "f1", [output])["state"] == "done"
    assert reread.finished("a.mp4", "f2", [output]) is None  # another config


def test_batch_threads_split_over_the_pipeline_without_changing_the_fingerprint():
    one = load_fleet_config(None, [*MODEL, "model.workers=2", "batch.threads=1"])
    four = load_fleet_config(None, [*MODEL, "model.workers=2", "batch.threads=4"])
    assert (pipeline_config(one).model.workers, pipeline_config(one).model.threads) == (1, 1)
    assert (pipeline_config(four).model.workers, pipeline_config(four).model.threads) == (2, 2)
    assert not hasattr(pipeline_config(one), "batch")
    assert fingerprint(pipeline_config(one), False, None) == fingerprint(pipeline_config(four), False, None)
    assert fingerprint(pipeline_config(one), False, None) != fingerprint(pipeline_config(one), True, None)


def test_auto_workers_give_each_fleet_worker_two_threads_not_the_whole_machine():
    auto = load_fleet_config(None, MODEL)
    assert auto.model.workers == 0 and worker_threads(auto) == 2
    assert (pipeline_config(auto).model.workers, pipeline_config(auto).model.threads) == (2, 1)
    four = load_fleet_config(None, [*MODEL, "batch.threads=4"])
    assert (worker_threads(four), pipeline_config(four).model.workers, pipeline_config(four).model.threads) == (4, 4, 1)
    explicit = load_fleet_config(None, [*MODEL, "model.workers=1", "model.threads=3"])
    assert worker_threads(explicit) == 3 and pipeline_config(explicit).model == explicit.model
