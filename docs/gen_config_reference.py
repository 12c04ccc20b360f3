"""Write docs/configuration.md from the config dataclasses: every key, its type and default, and the docstring of
its section, so the reference cannot drift from the code (tests/test_docs.py compares the committed file with
this output).

    python docs/gen_config_reference.py           # rewrite docs/configuration.md
    python docs/gen_config_reference.py --check   # exit 1 if the committed file differs

It imports the checkout it lives in, whatever the working directory or the installed copy.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from core.labels import LABELS  # noqa: E402
from detector.datasets import DataSource  # noqa: E402
from detector.models import MODEL_NAMES  # noqa: E402
from fleet.config import FleetConfig  # noqa: E402
from stream.config import DEFAULT_CONFIG, PipelineConfig  # noqa: E402
from training.train import TrainConfig  # noqa: E402

OUT = REPO / "docs" / "configuration.md"
COMMAND = "python docs/gen_config_reference.py"

# Keys whose type is a plain str, list or mapping but whose values (or items, or keys) the code checks against a
# constant: key -> (what is checked, the valid values).
CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "model.name": ("one of", MODEL_NAMES),
    "nms.classes": ("items", tuple(LABELS[1:])),
    "nms.class_thresh": ("keys", tuple(LABELS[1:])),
}


def docstring(cls: type) -> str:
    """The class's own docstring as Markdown (RST ``code`` -> `code`), or '' (dataclass makes one up otherwise)."""
    doc = inspect.getdoc(cls) or ""
    if not doc or doc.startswith(f"{cls.__name__}("):
        return ""
    return re.sub(r"``(.+?)``", r"`\1`", doc)


def type_name(tp: Any) -> str:
    """A type as a reader of a YAML file sees it: choices spelled out, sections and dataset entries linked."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    if tp is DataSource:
        return "[dataset entry](#dataset-entries)"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    return repr(value)


def value_text(value: Any) -> str:
    """A default as it would be written in a config file (YAML flow style), in a code span."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    elif isinstance(value, (list, tuple)):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    if isinstance(value, (list, dict)):
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    else:
        text = scalar(value)
    return f"`{text.replace('|', '&#124;')}`"


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return dataclasses.MISSING
        data = data[part]
    return data


def section(cls: type, prefix: str, heading: str, shipped: dict | None = None, intro: str = "") -> list[str]:
    """One section's Markdown: heading, where it is defined, its docstring, then a row per key; nested sections
    (``model.onnx``) follow as their own sections."""
    module = sys.modules[cls.__module__]
    source = Path(module.__file__).resolve().relative_to(REPO).as_posix()
    lines = [heading, "", *([intro, ""] if intro else []), f"`{cls.__name__}` in [{source}](../{source})", ""]
    doc = docstring(cls)
    if doc:
        lines += [doc, ""]
    hints = typing.get_type_hints(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            nested.append((tp, f"{key}."))
            rows.append(f"| `{key}` | section: [`{key}`](#{anchor(key)}) | |")
            continue
        kind = type_name(tp)
        if key in CHOICES:
            what, values = CHOICES[key]
            kind += f"; {what}: " + ", ".join(f"`{c}`" for c in values)
        default = default_of(f)
        text = "required" if default is dataclasses.MISSING else value_text(default)
        if f.metadata.get("secret"):
            text += " (secret: records and written configs show `***`)"
        if shipped is not None:
            in_file = lookup(shipped, key)
            if in_file is not dataclasses.MISSING and in_file != default:
                text += f"; {DEFAULT_CONFIG.name} sets {value_text(in_file)}"
        rows.append(f"| `{key}` | {kind} | {text} |")
    lines += ["| key | type | default |", "|---|---|---|", *rows, ""]
    for tp, sub in nested:
        lines += section(tp, sub, f"### `{sub.rstrip('.')}`", shipped)
    return lines


def anchor(key: str) -> str:
    """GitHub's anchor of a heading that is just `key` in a code span."""
    return re.sub(r"[^\w\- ]", "", key.lower()).replace(" ", "-")


def render() -> str:
    shipped = yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}
    pipeline = [f.name for f in dataclasses.fields(PipelineConfig)]
    hints = typing.get_type_hints(FleetConfig)
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{COMMAND}` from the config dataclasses; do not edit by hand. -->",
        "",
        f"Generated from the config dataclasses by `{COMMAND}` (a test fails when this file and the code",
        "disagree). Every key, its type, and its default: the value a key takes when the config file leaves it out.",
        "How to write config files and override keys on the command line: [the user guide](guide/configuration.md).",
        "Unknown keys and bad values are errors that name the key and the valid values.",
        "",
        "## Pipeline config",
        "",
        "Read by `driving-detect stream`, `evaluate`, `benchmark`, `tune`, `interval` and `batch` (`--config FILE`,",
        f"default [configs/{DEFAULT_CONFIG.name}](../configs/{DEFAULT_CONFIG.name}); any key also as `section.key=value`",
        f"on the command line). Where [configs/{DEFAULT_CONFIG.name}](../configs/{DEFAULT_CONFIG.name}) sets a value",
        "other than the default, the default column says so.",
        "",
        "Sections: " + ", ".join(f"[`{name}`](#{anchor(name)})" for name in [*pipeline, "batch"]) + ".",
        "",
    ]
    for name in pipeline:
        lines += section(hints[name], f"{name}.", f"### `{name}`", shipped)
    lines += section(hints["batch"], "batch.", "### `batch`", shipped,
                     "Read by `driving-detect batch` only; the other commands reject the section.")
    lines += [
        "## Training config",
        "",
        "Read by `driving-detect train --config FILE` (e.g. [configs/train-driving.yaml](../configs/train-driving.yaml));",
        "keys at the top level of the file, overrides as `key=value`.",
        "",
    ]
    lines += section(TrainConfig, "", "### Top level")
    lines += section(DataSource, "", "### Dataset entries")
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT.relative_to(REPO)} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
