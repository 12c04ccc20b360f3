"""What every command shares: the argument parser, the log format, and the one-line bad-input error.

Bad input (a usage error, a config, data, weights or source problem) is one ``error: ...`` line on stderr,
credentials in URLs masked, and exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import NoReturn

BAD_INPUT_EXIT = 2


class CommandParser(argparse.ArgumentParser):
    """argparse whose errors read like every other bad input of the project (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT_EXIT, f"error: {message}\n")


def mask_url(text: str) -> str:
    """Hide ``user:password@`` in any URL inside ``text`` (for every log line and error)."""
    return re.sub(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\g<scheme>***@", text)


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def bad_input(exc: BaseException) -> int:
    """Print ``exc`` as the command's one ``error:`` line and return the exit code for bad input."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"error: {mask_url(message)}", file=sys.stderr)
    return BAD_INPUT_EXIT
