"""The batch manifest, ``DIR/manifest.jsonl``: one JSON line per state change of a file, appended by the driver
only (workers never write it), flushed and fsync'd; the last line of a file wins.

States: ``running`` (handed to a worker), ``done`` (outputs moved into place; the line carries the per-file
summary), ``failed`` (with its error). A rerun skips files whose last state is ``done`` with the same config
fingerprint and whose outputs are still there; a truncated last line (the driver died mid-write) is ignored.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from stream.sinks import prepare_output

log = logging.getLogger(__name__)
MANIFEST = "manifest.jsonl"


class Manifest:
    """The manifest of one output folder; `prepare_output` proves the folder writable on open."""

    def __init__(self, out_dir: Path):
        self.path = prepare_output(out_dir / MANIFEST)
        self.last: dict[str, dict] = {}
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
                self.last[entry["file"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                log.warning("%s line %d is not a manifest entry (a write cut short?): ignored", self.path, number)

    def finished(self, rel: str, fingerprint: str, outputs: list[Path]) -> dict | None:
        """The ``done`` entry of ``rel`` if it is still valid for this config and its outputs exist."""
        entry = self.last.get(rel)
        if entry and entry["state"] == "done" and entry.get("fingerprint") == fingerprint:
            if all(p.exists() for p in outputs):
                return entry
            log.warning("%s is done in the manifest but its outputs are gone: running it again", rel)
        return None

    def append(self, rel: str, state: str, **fields: object) -> dict:
        entry = {"file": rel, "state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.last[rel] = entry
        return entry
