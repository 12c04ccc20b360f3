"""The one entry point: ``driving-detect SUBCOMMAND``, and the older forms kept as shims onto the same code."""
from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commands import batch, benchmark, export, stream, train, tune
from commands.common import SUBCOMMANDS, config_overrides, start_logging
from commands.main import main
from stream.config import load_pipeline_config
from tests.conftest import REPO, write_video

SCRIPT = Path(sys.executable).parent / "driving-detect"  # installed by pip install -e . ([project.scripts])


def test_help_lists_every_subcommand_without_loading_torch():
    out = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    listed = [line.split()[0] for line in out.split("subcommands:\n")[1].splitlines() if line.strip()]
    assert listed == list(SUBCOMMANDS) == ["stream", "evaluate", "train", "export", "benchmark", "tune",
                                                 "interval", "batch", "plot"]
    code = "import sys; from commands.main import main; main(['--help']); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip().endswith("False")


def test_unknown_or_missing_subcommand_is_one_error_line_and_exit_2(capsys):
    assert main(["detect"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown subcommand 'detect'") and err.count("\n") == 1
    assert main([]) == 2 and "subcommands:" in capsys.readouterr().err


def test_a_subcommand_names_itself_in_its_help_and_errors_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["plot", "--help"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("usage: driving-detect plot ")
    with pytest.raises(SystemExit) as exit:
        main(["plot", "--last", "0", "log.csv"])
    assert exit.value.code == 2 and capsys.readouterr().err == "error: --last must be >= 1\n"


def test_stream_subcommand_and_run_stream_py_write_identical_jsonl(tmp_path):
    clip = write_video(tmp_path / "clip.avi", frames=8, size=(192, 144))
    common = ["--source", str(clip), "--no-video", "--quiet", "model.min_size=144", "model.device=cpu",
              "model.backend=torch"]  # the bundled weights, no export: a quick run either way
    paths = {}
    for name, command in (("cli", [str(SCRIPT), "stream"]), ("script", [sys.executable, str(REPO / "run_stream.py")])):
        paths[name] = tmp_path / name / "d.jsonl"
        subprocess.run([*command, *common, "--detections", str(paths[name]), f"output.dir={tmp_path / name}",
                        f"output.benchmark_csv={tmp_path / name / 'log.csv'}"], check=True, cwd=tmp_path,
                       capture_output=True, timeout=240)
    cli, script = (paths[n].read_text() for n in ("cli", "script"))
    assert [json.loads(line)["frame"] for line in cli.splitlines()] == list(range(8))
    assert cli == script


READS_VIDEO = ("stream", "benchmark", "tune", "interval", "batch")
RUNS_A_MODEL = ("stream", "evaluate", "train", "export", "benchmark", "tune", "interval", "batch")
PIPELINE_TYPOS = "model:\n  topn: 5\nnms:\n  score_thresh: 2\n  iuo: 0.3\n"
PIPELINE_ERROR = ("error: 3 config errors: unknown key 'model.topn' (did you mean 'model.top_n'?); unknown key "
                  "'nms.iuo' (did you mean 'nms.iou'?); 'nms.score_thresh' must be in [0, 1], got 2.0")


def help_text(name: str, capsys) -> str:
    with pytest.raises(SystemExit):
        importlib.import_module(f"commands.{name}").parse_args(["--help"], prog=f"driving-detect {name}")
    return capsys.readouterr().out


def test_one_vocabulary_source_max_frames_device_and_overrides_with_help(capsys):
    for name in SUBCOMMANDS:
        text = help_text(name, capsys)
        assert ("--source" in text and "--max-frames N" in text) == (name in READS_VIDEO), name
        assert ("--device {auto,cpu,cuda}" in text and "config overrides, dotted keys" in text) == (
            name in RUNS_A_MODEL), name
        assert "--clip" not in text and "--frames " not in text, name
        assert ("--output VIDEO" in text) == (name == "stream"), name  # the annotated video's path, stream only
    assert "model.* keys, on top of the flags" in help_text("export", capsys)  # export: overrides after its flags


def test_device_is_the_model_device_override_after_the_others():
    args = stream.parse_args(["--device", "cpu", "model.device=cuda", "model.top_n=5"])
    assert config_overrides(args) == ["model.device=cuda", "model.top_n=5", "model.device=cpu"]
    assert load_pipeline_config(None, config_overrides(args)).model.device == "cpu"
    _, args = train.parse_args(["--config", "t.yaml", "--device", "cuda", "epochs=3"])
    assert config_overrides(args, device_key="device") == ["epochs=3", "device=cuda"]
    assert batch.parse_args(["a.mp4", "--device", "cpu", "model.top_n=5", "--out", "o"]).device == "cpu"
    args = export.parse_args(["--model", "driving_mobilenet_v2_fpn", "--out", "x.onnx", "--device", "cuda",
                              "model.device=cpu", "model.top_n=5"])
    assert config_overrides(args) == ["model.device=cpu", "model.top_n=5", "model.device=cuda"]


def test_old_spellings_are_hidden_aliases_that_warn(caplog):
    args = tune.parse_args(["--clip", "c.mp4", "--data", "voc:x", "--frames", "7"])
    assert (args.source, args.max_frames) == ("c.mp4", 7)
    assert benchmark.parse_args(["--source", "c.mp4", "--frames", "9"]).max_frames == 9
    with caplog.at_level(logging.WARNING):
        start_logging(args)
    assert [r.getMessage() for r in caplog.records] == [
        "--clip is deprecated and will be removed in the next release; use --source",
        "--frames is deprecated and will be removed in the next release; use --max-frames"]
    assert not hasattr(tune.parse_args(["--source", "c.mp4", "--data", "voc:x"]), "deprecated")


def test_a_required_option_is_satisfied_by_either_spelling_and_named_when_missing(capsys):
    with pytest.raises(SystemExit) as exit:
        tune.parse_args(["--data", "voc:x"])
    assert exit.value.code == 2 and capsys.readouterr().err == "error: the following arguments are required: --source\n"
    with pytest.raises(SystemExit):
        tune.parse_args(["--source", "c.mp4", "--data", "voc:x", "--max-frames", "0"])
    assert capsys.readouterr().err == "error: argument --max-frames: must be >= 1, got 0\n"


def test_batch_takes_source_options_too_and_benchmark_backends_default_to_the_configs():
    assert batch.parse_args(["a.mp4", "--source", "b/", "--out", "o", "model.top_n=5"]).sources == ["a.mp4", "b/"]
    assert benchmark.parse_args(["--source", "c.mp4"]).backends is None  # the config's model.backend:
    assert load_pipeline_config().model.backend == "auto"


def test_a_config_typo_is_every_bad_key_in_one_line_before_torch_in_every_command(tmp_path):
    """The bad config of each command that runs a model: exit 2 and one line naming every problem, all found
    without importing torch (so a typo costs no model load)."""
    typos = tmp_path / "typos.yaml"
    typos.write_text(PIPELINE_TYPOS)
    train_typos = tmp_path / "train.yaml"
    train_typos.write_text("train: [{spec: 'coco:x.json'}]\nepochz: 3\nlr: -1\n")
    pipeline = ["--config", str(typos)]
    argvs = {
        "stream": ["--source", "x.mp4", *pipeline], "evaluate": ["--data", "voc:x", *pipeline],
        "train": ["--config", str(train_typos), "--device", "cpu"],
        "export": ["--model", "driving_mobilenet_v2_fpn", "--out", "x.onnx", "model.topn=5", "nms.iou=0.3"],
        "benchmark": ["--source", "x.mp4", *pipeline], "tune": ["--source", "x.mp4", "--data", "voc:x", *pipeline],
        "interval": ["--source", "x.mp4", "--data", "coco:x", *pipeline],
        "batch": ["x.mp4", "--out", str(tmp_path / "out"), *pipeline],
    }
    assert set(argvs) == set(SUBCOMMANDS) - {"plot"}
    code = ("import contextlib, io, json, sys\nfrom commands.main import main\n"
            f"for name, argv in {argvs!r}.items():\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        code = main([name, *argv])\n"
            "    print(json.dumps([name, code, err.getvalue(), 'torch' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=120)
    results = {name: (code, err, torch) for name, code, err, torch in map(json.loads, out.stdout.splitlines())}
    for name in argvs:
        code, err, torch = results[name]
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert code == 2 and len(errors) == 1 and not torch, (name, err)
        expected = {"train": "error: 2 config errors: unknown key 'epochz' (did you mean 'epochs'?); 'lr' must be "
                             ">= 0, got -1.0",
                    "export": "error: 2 config errors: unknown key 'model.topn' (did you mean 'model.top_n'?); "
                              "unknown key 'nms'; valid keys: model"}.get(name, PIPELINE_ERROR)
        assert errors[0] == expected, name


def test_a_config_typo_is_reported_within_a_second_or_so(tmp_path):
    """``driving-detect stream`` with a typo'd key: < 1 s on a 2-core machine, asserted with room for a slower one."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "commands.main", "stream", "--source", "x.mp4", "model.topn=5"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert out.returncode == 2
    assert out.stderr == "error: unknown key 'model.topn' (did you mean 'model.top_n'?)\n"
    assert seconds < 3, f"{seconds:.1f} s"
