"""The one argument parser every command uses: a usage error is one ``error: ...`` line and exit code 2."""
from __future__ import annotations

import argparse
from typing import NoReturn


class CommandParser(argparse.ArgumentParser):
    """argparse whose errors read like every other bad input of the project (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")
