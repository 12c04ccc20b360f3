"""The one benchmark record format that every command writes: a JSON file and a row of the shared CSV log."""
from __future__ import annotations

import csv
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class BenchmarkRecord:
    """One measured run. ``kind`` says which command wrote it (stream, benchmark, tune)."""

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
    """Write the record as JSON and append it to the shared CSV log (new columns extend the header)."""
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(asdict(record), indent=2))
    if csv_path is not None:
        append_csv(csv_path, record.csv_row())


def append_csv(path: Path, row: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    old_header: list[str] = []
    rows: list[dict[str, str]] = []
    if path.exists() and path.stat().st_size:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows, old_header = list(reader), list(reader.fieldnames or [])
    header = old_header + [k for k in row if k not in old_header]
    rewrite = bool(old_header) and header != old_header
    with path.open("w" if rewrite or not old_header else "a", newline="") as f:
        writer = csv.DictWriter(f, header)
        if rewrite or not old_header:
            writer.writeheader()
            writer.writerows(rows)
        writer.writerow(row)


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
