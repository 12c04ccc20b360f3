"""The log format every command uses, and credential masking for every line that may show a URL."""
from __future__ import annotations

import logging
import re
from datetime import datetime


def mask_url(text: str) -> str:
    """Hide ``user:password@`` in any URL inside ``text`` (for every log line and error)."""
    return re.sub(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\g<scheme>***@", text)


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def log_line_time(line: str) -> float:
    """The wall-clock time (``time.time()`` scale) a line of this format was logged at: its leading asctime,
    ``2026-12-02 01:02:03,456``. For measuring from outside a run when something was noticed."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
