"""The documentation, checked against the code: README.md and docs/**/*.md link only to files and headings that
exist, every CLI flag they show for a command exists in that command's parser, every ``section.key`` they name
exists in the config, and docs/configuration.md is what docs/gen_config_reference.py generates.

No model is loaded: the command modules are imported (torch comes with them) and their parsers taken before they
parse anything; the bench scripts' flags are read from their source.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import importlib
import importlib.util
import re
import shlex
import typing
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

GENERATOR = REPO / "docs" / "gen_config_reference.py"
REGENERATE = "python docs/gen_config_reference.py"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
WRAPPERS = ("taskset", "timeout", "nice", "time", "env")
CONFIG_KEY = re.compile(r"^(model|nms|track|source|render|output|serve|batch)\.[a-z_][\w.]*")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# --- links -------------------------------------------------------------------------------------------------------

def without_code(text: str) -> str:
    """Markdown with fenced blocks and code spans blanked (links inside code are not links)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub(lambda m: "code", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links and markup dropped), lower case, punctuation removed, spaces
    to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text())):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def broken_links(doc: Path, text: str) -> list[str]:
    """``doc: target (why)`` for every relative link or image of ``text`` that names no file or no heading."""
    out = []
    prose = without_code(text)
    for target in [*LINK.findall(prose), *HTML_LINK.findall(prose)]:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            out.append(f"{rel(doc)}: {target} (no such file)")
        elif REPO not in path.parents and path != REPO:
            out.append(f"{rel(doc)}: {target} (outside the repository)")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            out.append(f"{rel(doc)}: {target} (no heading '#{fragment}' in {rel(path)})")
    return out


# --- commands and their flags ------------------------------------------------------------------------------------

class _Parser(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


@cache
def command_flags(name: str) -> frozenset[str]:
    """The option strings of ``driving-detect NAME``'s parser, taken when it starts parsing."""
    module = importlib.import_module(f"commands.{name}")
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise _Parser(self)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        module.parse_args([], prog=f"driving-detect {name}")
    except _Parser as found:
        return frozenset(found.parser._option_string_actions)
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f"commands.{name}.parse_args did not parse")


@cache
def script_flags(path: Path) -> frozenset[str]:
    """The option strings a script without a reusable parser adds (``add_argument("--x", ...)`` in its source)."""
    found = {"-h", "--help"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            found.update(a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-"))
    return frozenset(found)


def subcommands() -> dict[str, str]:
    from commands.common import SUBCOMMANDS

    return SUBCOMMANDS


def script_target(path: Path) -> tuple[str, str] | None:
    """What running ``path`` runs: ("command", NAME) for the shims of ``commands/NAME.py``, else ("script", path)."""
    if not path.is_file():
        return None
    shim = re.search(r"from commands\.(\w+) import main", path.read_text())
    return ("command", shim.group(1)) if shim else ("script", str(path))


def resolve(tokens: list[str]) -> tuple[str, str] | str | None:
    """The program a documented command line runs: ("command", NAME) or ("script", PATH); an error string for a
    project command that does not exist; None for other programs (pip, ffmpeg, ray, pytest, ...)."""
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    if tokens[0] in WRAPPERS or "=" in tokens[0]:  # taskset -c 0 python ..., VAR=x driving-detect ...
        programs = [i for i, t in enumerate(tokens) if t in ("python", "python3", "driving-detect") or t.endswith(".py")]
        return resolve(tokens[programs[0]:]) if programs else None
    if tokens[0] == "driving-detect":
        if len(tokens) < 2 or tokens[1].startswith("-") or tokens[1].isupper():  # --help, SUBCOMMAND
            return None
        return ("command", tokens[1]) if tokens[1] in subcommands() else f"no subcommand '{tokens[1]}'"
    if tokens[0] in ("python", "python3") and len(tokens) > 2 and tokens[1] == "-m":
        module = tokens[2]
        if module.split(".")[0] not in packages:
            return None
        base = REPO.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__main__.py"):
            if path.is_file():
                return script_target(path)
        return f"no module '{module}'"
    if tokens[0] in ("python", "python3") and len(tokens) > 1 and tokens[1].endswith(".py"):
        return script_target(REPO / tokens[1]) or f"no script '{tokens[1]}'"
    if tokens[0].endswith(".py") and (REPO / tokens[0]).is_file():
        return script_target(REPO / tokens[0])
    return None


def all_flags() -> frozenset[str]:
    flags = set().union(*(command_flags(name) for name in subcommands()))
    for path in sorted((REPO / "bench").glob("*.py")):
        flags |= script_flags(path)
    return frozenset(flags)


def command_lines(text: str) -> list[str]:
    """The command lines of a document: each line of a code block (backslash continuations and indented
    synopsis lines joined to the line before, comments cut), and each code span; split at ``&&`` and ``;``."""
    found = []
    for block in FENCE.finditer(text):
        lines: list[str] = []
        joined = False
        for line in block.group(0).splitlines()[1:-1]:
            if (joined or (line[:1].isspace() and line.lstrip().startswith("["))) and lines:
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.strip().removeprefix("$ "))
            joined = lines[-1].endswith("\\")
            lines[-1] = lines[-1].removesuffix("\\")
        found += [re.sub(r"\s#.*$", "", line) for line in lines]
    found += [m.group(2).replace("\n", " ") for m in INLINE_CODE.finditer(FENCE.sub("", text))]
    return [" ".join(part.split()) for line in found for part in re.split(r"&&|;", line) if part.strip()]


def tokens_of(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote in a span that is not a whole command
        return line.split()


def bad_flags(doc: Path, text: str) -> list[str]:
    """``doc: flag (command)`` for every flag a command line shows that its command does not have."""
    out = []
    for line in command_lines(text):
        tokens = tokens_of(line)
        if not tokens:
            continue
        if tokens[0].startswith("--"):  # a flag quoted alone in prose: some project command must have it
            out += [f"{rel(doc)}: {flag} in `{line}` (no command has it)"
                    for flag in FLAG.findall(tokens[0]) if flag not in all_flags()]
            continue
        target = resolve(tokens)
        if target is None:
            continue
        if isinstance(target, str):
            out.append(f"{rel(doc)}: `{line}` ({target})")
            continue
        kind, name = target
        flags = command_flags(name) if kind == "command" else script_flags(Path(name))
        program = f"driving-detect {name}" if kind == "command" else rel(Path(name))
        rest = " ".join(tokens[1:])
        out += [f"{rel(doc)}: {flag} in `{line}` ({program} has no such flag)"
                for flag in FLAG.findall(rest) if flag not in flags]
    return out


# --- config keys -------------------------------------------------------------------------------------------------

def config_key_exists(key: str) -> bool:
    """Whether dotted ``key`` names a field of the pipeline or batch config (anything below a mapping field, e.g.
    ``nms.class_thresh.car`` or ``source.ffmpeg_options.rtsp_flags``, and ``section.*`` count)."""
    from fleet.config import FleetConfig

    tp: typing.Any = FleetConfig
    for part in key.split("."):
        if part == "*" or typing.get_origin(tp) is dict:
            return True
        if not dataclasses.is_dataclass(tp):
            return False
        hints = typing.get_type_hints(tp)
        if part not in hints:
            return False
        tp = hints[part]
    return True


def bad_config_keys(doc: Path, text: str) -> list[str]:
    out = []
    for line in command_lines(text):
        for token in tokens_of(line):
            match = CONFIG_KEY.match(token.lstrip("'\"[("))
            if match is None:
                continue
            key = match.group(0).rstrip(".")
            if key.endswith((".py", ".yaml", ".json", ".csv", ".mp4", ".md", ".png")):
                continue
            if not config_key_exists(key):
                out.append(f"{rel(doc)}: {key} in `{line}` (no such config key)")
    return out


# --- the tests ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_links_name_files_and_headings_that_exist(doc: Path):
    assert broken_links(doc, doc.read_text()) == []


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_documented_flags_exist_in_their_commands(doc: Path):
    assert bad_flags(doc, doc.read_text()) == []


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_documented_config_keys_exist(doc: Path):
    assert bad_config_keys(doc, doc.read_text()) == []


def test_the_checks_catch_what_they_are_for():
    doc = REPO / "docs" / "guide" / "example.md"
    text = ("[a](../../README.md) [b](../missing.md) [c](../MODEL_CARD.md#no-such-heading) ![d](../web-view.png)\n"
            "[e](https://example.com/x) `[not a link](nowhere.md)`\n"
            "```bash\n"
            "driving-detect stream --source x.mp4 \\\n  --no-such-flag model.top_n=50 model.no_such_key=1\n"
            "driving-detect stream [--source SRC]\n               [--made-up N]\n"
            "driving-detect tune --clip c.mp4 --target-fps 25\n"
            "taskset -c 0 python run_stream.py --max-frames 3 --frames 3\n"
            "python -m bench.size_sweep --out x --frames 3\n"
            "driving-detect nosuchcommand --x\n"
            "pip install --whatever .\n"
            "```\n"
            "Run `python run_stream.py --display --bogus` or pass `--serve-token` (and `--imaginary`);\n"
            "`nms.class_thresh.car=0.5` and `source.ffmpeg_options.rtsp_flags=prefer_tcp` are keys, `model.topn` not.\n")
    assert broken_links(doc, text) == [
        "docs/guide/example.md: ../missing.md (no such file)",
        "docs/guide/example.md: ../MODEL_CARD.md#no-such-heading (no heading '#no-such-heading' in docs/MODEL_CARD.md)",
    ]
    assert bad_flags(doc, text) == [
        "docs/guide/example.md: --no-such-flag in `driving-detect stream --source x.mp4 --no-such-flag "
        "model.top_n=50 model.no_such_key=1` (driving-detect stream has no such flag)",
        "docs/guide/example.md: --made-up in `driving-detect stream [--source SRC] [--made-up N]` "
        "(driving-detect stream has no such flag)",
        "docs/guide/example.md: --frames in `taskset -c 0 python run_stream.py --max-frames 3 --frames 3` "
        "(driving-detect stream has no such flag)",
        "docs/guide/example.md: --frames in `python -m bench.size_sweep --out x --frames 3` "
        "(bench/size_sweep.py has no such flag)",
        "docs/guide/example.md: `driving-detect nosuchcommand --x` (no subcommand 'nosuchcommand')",
        "docs/guide/example.md: --bogus in `python run_stream.py --display --bogus` "
        "(driving-detect stream has no such flag)",
        "docs/guide/example.md: --imaginary in `--imaginary` (no command has it)",
    ]
    assert bad_config_keys(doc, text) == [
        "docs/guide/example.md: model.no_such_key in `driving-detect stream --source x.mp4 --no-such-flag "
        "model.top_n=50 model.no_such_key=1` (no such config key)",
        "docs/guide/example.md: model.topn in `model.topn` (no such config key)",
    ]
    assert slug("Real-time by default (`model.backend=auto`)") == "real-time-by-default-modelbackendauto"


def test_readme_is_a_short_manual_with_the_commands_ci_and_users_run():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "the README is the manual's front page: details go to docs/"
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python run_stream.py" in readme
    assert ". .venv/bin/activate && pip install -e '.[dev]' && python -m pytest -q" in readme  # .ci/run runs it


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_config_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_generated_from_the_config_dataclasses():
    expected = load_generator().render()
    committed = (REPO / "docs" / "configuration.md").read_text()
    if committed != expected:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True),
                                                 "docs/configuration.md (committed)", "generated"))[:40])
        pytest.fail(f"docs/configuration.md does not match the config dataclasses; regenerate it with:\n\n"
                    f"    {REGENERATE}\n\nand commit the result. First differences:\n{diff}")
