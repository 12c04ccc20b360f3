"""``driving-detect SUBCOMMAND [options]``: the project's one command-line entry point.

Each subcommand is a module of this package (listed in `commands.common.SUBCOMMANDS`) with ``main(argv, prog)``;
it is imported only when run, so ``driving-detect --help`` answers without loading torch.
"""
from __future__ import annotations

import importlib
import sys

from commands.common import BAD_INPUT_EXIT, SUBCOMMANDS


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, summary in SUBCOMMANDS.items())
    return (f"usage: driving-detect SUBCOMMAND [options]   (driving-detect SUBCOMMAND --help for its options)\n\n"
            f"Real-time object detection for driving footage.\n\nsubcommands:\n{rows}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else BAD_INPUT_EXIT
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand '{name}'; valid subcommands: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return BAD_INPUT_EXIT
    module = importlib.import_module(f"commands.{name}")
    return module.main(rest, prog=f"driving-detect {name}")


if __name__ == "__main__":
    sys.exit(main())
