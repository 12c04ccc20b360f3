"""The one entry point: ``driving-detect SUBCOMMAND``, and the older forms kept as shims onto the same code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from commands.common import SUBCOMMANDS
from commands.main import main
from tests.conftest import REPO, write_video

SCRIPT = Path(sys.executable).parent / "driving-detect"  # installed by pip install -e . ([project.scripts])
SHIMS = {"detector.evaluate": "--data", "detector.train": "--config", "detector.tune": "--clip",
         "detector.export": "--precision", "stream.benchmark": "--backends", "stream.plot": "--kind",
         "fleet": "--ray-address"}


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


def test_every_python_dash_m_form_still_runs_its_command():
    """``python -m detector.tune --help`` and the rest, run as scripts (runpy) in one interpreter."""
    code = (
        "import runpy, sys\n"
        f"for module in {sorted(SHIMS)!r}:\n"
        "    sys.argv = [module, '--help']\n"
        "    try:\n"
        "        runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as exit:\n"
        "        print('EXIT', module, exit.code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for module, option in SHIMS.items():
        assert f"EXIT {module} 0" in out and option in out, module
