"""What every command shares: the argument parser, the options every command spells the same way, and the
one-line bad-input error.

One vocabulary: ``--source`` is what a command reads, ``--max-frames`` how much of it, ``--out`` where its results
go; every command that runs a model takes ``--device`` and ``key=value`` config overrides (`add_model_options`).
Earlier spellings (``tune --clip``, ``benchmark --frames``, ...) still work for one release, hidden from --help,
with a warning (`CommandParser.add_alias`).

Bad input (a usage error, a config, data, weights or source problem) is one ``error: ...`` line on stderr,
credentials in URLs masked, and exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from bench.choices import BACKENDS
from bench.clips import parse_sizes
from core.config import ConfigError
from core.log import mask_url, setup_logging
from stream.config import load_pipeline_config

BAD_INPUT_EXIT = 2
Config = TypeVar("Config")
DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)

# ``driving-detect`` subcommand -> what it does; each is the module ``commands.<name>`` with ``main(argv, prog)``.
SUBCOMMANDS: dict[str, str] = {
    "stream": "real-time detection on a video file, webcam, stream URL or image folder (annotated video, JSONL, record)",
    "evaluate": "AP@0.5 per class (VOC all-point and 11-point), COCO AP@[.5:.95], PR curves and a JSON report",
    "train": "train a Faster R-CNN end to end; checkpoints each epoch, evaluates on val, resumes",
    "export": "export a detector to ONNX with the project metadata (labels, top-N, sizes, weights hash)",
    "benchmark": "model-only vs threaded pipeline vs naive serial loop, per backend and model, in one run",
    "tune": "sweep the RPN top-N for pipeline FPS and mAP@0.5, plot the Pareto front, recommend and write a config",
    "interval": "sweep model.interval (detect every k-th frame, track between) for pipeline FPS and car AP@0.5",
    "batch": "many videos and image folders on Ray workers (local or a cluster): resumable, with a fleet summary",
    "plot": "draw any set of benchmark records: FPS, per-stage ms, latency, FPS vs mAP@0.5",
}


class CommandParser(argparse.ArgumentParser):
    """argparse whose errors read like every other bad input of the project (no usage dump), and which keeps an
    option's earlier spelling working (`add_alias`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._required_with_alias: list[argparse.Action] = []

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT_EXIT, f"error: {message}\n")

    def add_alias(self, old: str, new: str) -> None:
        """``old`` as a hidden second spelling of the option ``new`` (added before): the same value, absent from
        --help, and a deprecation warning when used (`start_logging` logs it). A required ``new`` is satisfied
        by either spelling (checked after parsing; its help says it is required)."""
        action = self._option_string_actions[new]
        self.add_argument(old, dest=action.dest, type=action.type, choices=action.choices, action=_OldSpelling,
                          new=new, help=argparse.SUPPRESS)
        if action.required:
            action.required = False
            action.help = f"{action.help} (required)"
            self._required_with_alias.append(action)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        return self._check_required(super().parse_args(args, namespace))

    def parse_intermixed_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        return self._check_required(super().parse_intermixed_args(args, namespace))

    def _check_required(self, args: argparse.Namespace) -> argparse.Namespace:
        missing = [a.option_strings[0] for a in self._required_with_alias if getattr(args, a.dest) is None]
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        return args


class _OldSpelling(argparse.Action):
    """Stores its value like the option it is an old spelling of, and notes the use in ``args.deprecated``."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.deprecated = [*getattr(namespace, "deprecated", []), (option_string, self.new)]


def start_logging(args: argparse.Namespace) -> None:
    """The project's log format (warnings only with ``--quiet``), then one warning for each old option spelling
    the command line used, naming the one to use instead."""
    setup_logging(getattr(args, "quiet", False))
    for old, new in getattr(args, "deprecated", []):
        log.warning("%s is deprecated and will be removed in the next release; use %s", old, new)


def add_max_frames(parser: CommandParser, help: str, default: int | None = None) -> None:
    """``--max-frames N``: how many frames of ``--source`` the command reads, the same flag in every command."""
    parser.add_argument("--max-frames", type=positive_int, default=default, metavar="N", help=help)


def add_model_options(parser: CommandParser, example: str = "model.top_n=50", overrides: bool = True,
                      device_help: str = "where the model runs") -> None:
    """``--device`` and the ``key=value`` config overrides (with ``example`` in their help) of a command that runs
    a model; ``overrides`` False when the command parses its positionals itself (batch: sources and overrides);
    ``device_help`` when the device means more than that (export: where the written graph must run)."""
    parser.add_argument("--device", choices=DEVICES, help=f"{device_help} (overrides the config's device)")
    if overrides:
        parser.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help(example))


def overrides_help(example: str) -> str:
    """The help text of ``key=value`` arguments, the same in every command."""
    return f"config overrides, dotted keys with YAML values, e.g. {example}"


def config_overrides(args: argparse.Namespace, device_key: str = "model.device") -> list[str]:
    """The command line's ``key=value`` overrides, with ``--device`` as ``device_key=...`` after them (it wins)."""
    return [*args.overrides, *([f"{device_key}={args.device}"] if args.device else [])]


def run_with_config(args: argparse.Namespace, run: Callable[[argparse.Namespace, Config], int],
                    load: Callable[[str | Path | None, list[str]], Config] = load_pipeline_config,
                    overrides: list[str] | None = None) -> int:
    """A command's start: logging, then its config (``--config`` with ``overrides``, by default the command line's
    ``key=value`` and ``--device``) loaded and checked before ``run`` imports anything heavy, so a bad config is
    one ``error:`` line in well under a second; then ``run(args, cfg)``."""
    start_logging(args)
    try:
        cfg = load(args.config, config_overrides(args) if overrides is None else overrides)
    except ConfigError as exc:  # before torch is imported: a typo costs no model load
        return bad_input(exc)
    return run(args, cfg)


def bad_input(exc: BaseException) -> int:
    """Print ``exc`` as the command's one ``error:`` line and return the exit code for bad input."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"error: {mask_url(message)}", file=sys.stderr)
    return BAD_INPUT_EXIT


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (anything else is a one-line usage error)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (anything else is a one-line usage error)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """``"10,25,50"`` -> ``[10, 25, 50]`` (argparse type: a bad list is a one-line usage error)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return list(dict.fromkeys(values))


def backend_list(text: str) -> list[str]:
    """``"torch,onnx"`` -> ``["torch", "onnx"]`` (argparse type: only `bench.choices.BACKENDS`)."""
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names or not set(names) <= set(BACKENDS):
        raise argparse.ArgumentTypeError(f"'{text}': backends are {', '.join(BACKENDS)}")
    return names


def size_list(text: str) -> list[str]:
    """argparse type: ``WxH,...`` sizes (`bench.clips.parse_sizes`), a bad one a one-line usage error."""
    try:
        return parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
