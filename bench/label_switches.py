"""Track ids whose class changes during a run, from the run's detections JSONL (`stream --detections`).

``track_labels`` is meant to give an id one class for its whole life (the tracker's vote, `tracking.tracker`);
this counts the ids for which it did not, and prints each one's class changes and the detector's own labels for
it, which is what shows whether the vote or the identity (one id passed between two objects) went wrong.

    python -m bench.label_switches outputs/seattlestreet1/detections.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class IdHistory:
    """One track id over a run: its class by vote on each frame it is drawn, and the detector's label there."""

    frames: list[int] = field(default_factory=list)
    voted: list[str] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)

    def changes(self) -> list[tuple[int, str]]:
        """(first frame, class) of each run of one voted class, in order: one entry when the id kept its class."""
        runs: list[tuple[int, str]] = []
        for frame, label in zip(self.frames, self.voted):
            if not runs or runs[-1][1] != label:
                runs.append((frame, label))
        return runs


def id_histories(records: Iterable[dict]) -> dict[int, IdHistory]:
    """Every confirmed track id of a run's JSONL records (one dict a frame), in frame order."""
    histories: dict[int, IdHistory] = {}
    for record in records:
        for track, voted, detected in zip(record["track_ids"], record["track_labels"], record["labels"]):
            if track is None or track < 0:
                continue
            history = histories.setdefault(int(track), IdHistory())
            history.frames.append(int(record["frame"]))
            history.voted.append(voted)
            history.detected.append(detected)
    return histories


def switched(histories: dict[int, IdHistory]) -> dict[int, IdHistory]:
    """The ids whose voted class changed at least once."""
    return {track: h for track, h in histories.items() if len(h.changes()) > 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("detections", type=Path, help="a run's detections JSONL")
    args = parser.parse_args(argv)
    with args.detections.open() as f:
        histories = id_histories(json.loads(line) for line in f if line.strip())
    bad = switched(histories)
    for track, history in bad.items():
        runs = ", ".join(f"{label} from frame {frame}" for frame, label in history.changes())
        detected = ", ".join(f"{label} {n}" for label, n in Counter(history.detected).most_common())
        print(f"id {track}: frames {history.frames[0]}-{history.frames[-1]}: {runs} (detector: {detected})")
    print(f"{len(bad)} of {len(histories)} track ids changed class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
