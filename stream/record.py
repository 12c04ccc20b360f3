"""The one benchmark record format that every command writes: a JSON file and a row of the shared CSV log."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
KINDS = ("stream", "benchmark", "tune", "batch")  # the commands that write records, as their ``kind``


@dataclass
class BenchmarkRecord:
    """One measured run. ``kind`` says which command wrote it (one of `KINDS`); ``source_size`` is the ``WxH``
    of the source's first frame, so runs at different resolutions are told apart.

    What ran, as resolved (never ``auto``): ``backend``, ``precision``, ``workers`` x ``threads``, and
    ``input_size``, the ``WxH`` the model saw for the source's first frame. How the run ended: ``ended`` is
    ``complete``, ``interrupted`` (Ctrl-C, SIGTERM, the window closed), ``failed`` or ``max_frames``;
    ``source_frames`` is the source's frame count where it knows one.
    """

    kind: str
    source: str
    model: str
    weights: str
    backend: str
    device: str
    top_n: int
    frames: int
    seconds: float
    fps: float
    precision: str = ""
    workers: int = 0
    threads: int = 0
    input_size: str = ""
    source_size: str = ""
    ended: str = ""
    source_frames: int | None = None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    dropped: int = 0
    skipped: int = 0
    reconnects: int = 0
    gap_seconds: float = 0.0
    tracks: int = 0
    detector_frames: int = 0
    queues: dict[str, dict[str, float]] = field(default_factory=dict)
    variant: str = ""
    map50: float | None = None
    config: dict = field(default_factory=dict)
    host: str = field(default_factory=lambda: f"{platform.node()} ({platform.processor() or platform.machine()})")
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def csv_row(self) -> dict[str, object]:
        """Flat columns: scalars as they are, ``stage_<name>_<stat>``, ``latency_<stat>``, config as JSON."""
        row = {k: v for k, v in asdict(self).items() if not isinstance(v, dict)}
        for stage, stats in self.stages.items():
            row.update({f"stage_{stage}_{k}": v for k, v in stats.items()})
        row.update({f"latency_{k}": v for k, v in self.latency.items()})
        row["config"] = json.dumps(self.config, sort_keys=True)
        return row


def write_record(record: BenchmarkRecord, json_path: Path | None, csv_path: Path | None) -> None:
    """Write the record as JSON and append it to the shared CSV log (new columns extend the header). Both are
    atomic: a stop or a full disk at any moment leaves the old file or the new one, never a torn one."""
    if json_path is not None:
        atomic_write(json_path, json.dumps(asdict(record), indent=2))
    if csv_path is not None:
        append_csv(csv_path, record.csv_row())


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def append_csv(path: Path, row: dict[str, object]) -> None:
    """One row more: a single ``write`` in append mode when the header already has every column, else the whole
    file rewritten atomically with the wider header (old rows keep their values, new columns empty)."""
    old_header: list[str] = []
    rows: list[dict[str, str]] = []
    if path.exists() and path.stat().st_size:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows, old_header = list(reader), list(reader.fieldnames or [])
    header = old_header + [k for k in row if k not in old_header]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, header)
    if header == old_header:
        writer.writerow(row)
        size = path.stat().st_size
        try:
            with path.open("a", newline="") as f:
                f.write(text.getvalue())
        except OSError:
            os.truncate(path, size)  # a row cut short by a full disk is taken back
            raise
        return
    writer.writeheader()
    writer.writerows([*rows, row])
    atomic_write(path, text.getvalue())


def write_table(path: Path, rows: list[dict[str, object]]) -> None:
    """``rows`` as a new CSV file whose header is every key in first-seen order (a result table, not the log)."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)


def read_records(path: Path) -> list[dict[str, str]]:
    """Rows of a benchmark CSV log, as written by `write_record`."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
