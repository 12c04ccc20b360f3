"""The log format every command uses, and credential masking for every line that may show a URL."""
from __future__ import annotations

import logging
import re


def mask_url(text: str) -> str:
    """Hide ``user:password@`` in any URL inside ``text`` (for every log line and error)."""
    return re.sub(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\g<scheme>***@", text)


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
