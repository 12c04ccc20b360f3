"""`Detections`: the one currency between the backends, the NMS stage, the overlay, the sinks and evaluation."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.labels import LABELS


def _numpy(values: Any) -> np.ndarray:
    """A torch tensor (any device or dtype) or array-like as a host array; duck-typed so core needs no torch."""
    return values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)


@dataclass
class Detections:
    """Boxes of one image in source pixels.

    boxes: (N, 4) float32 xyxy; scores: (N,) float32; labels: (N,) int64 driving class ids (see `labels.LABELS`);
    track_ids: (N,) int64 object identities from a tracker (-1: not a confirmed track), or None when untracked;
    track_labels: (N,) int64 each box's track's class (the vote over the track's detections, so an id keeps one
    class while ``labels`` stays the detector's per-frame guess), or None when untracked.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    track_ids: np.ndarray | None = None
    track_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, np.int64).reshape(-1)
        if self.track_labels is not None:
            self.track_labels = np.asarray(self.track_labels, np.int64).reshape(-1)
        lengths = [len(self.boxes), len(self.scores), len(self.labels)]
        lengths += [len(a) for a in (self.track_ids, self.track_labels) if a is not None]
        if len(set(lengths)) != 1:
            raise ValueError(f"boxes, scores, labels (and track_ids) differ in length: {', '.join(map(str, lengths))}")

    @classmethod
    def from_model_output(cls, boxes: Any, scores: Any, labels: Any, class_map: np.ndarray) -> Detections:
        """A model's raw output in driving ids: ``class_map`` maps model class index -> driving id, and the
        classes it maps to -1 (not driving classes) are dropped.

        Args:
            boxes: (N, 4) xyxy in source pixels; scores: (N,); labels: (N,) model class indices. Tensors or arrays.
            class_map: (num_model_classes,) int64.
        """
        mapped = np.asarray(class_map)[_numpy(labels).astype(np.int64)]
        keep = mapped >= 0
        return cls(_numpy(boxes)[keep], _numpy(scores)[keep], mapped[keep])

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """One set from several (tiles of a frame, detector and tracker boxes); run class-wise NMS after if they
        overlap."""
        if not parts:
            return cls()
        tracked = any(p.track_ids is not None for p in parts)
        ids = np.concatenate([p.track_ids if p.track_ids is not None else np.full(len(p), -1) for p in parts])
        voted = any(p.track_labels is not None for p in parts)
        classes = np.concatenate([p.track_labels if p.track_labels is not None else p.labels for p in parts])
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.labels for p in parts]), ids if tracked else None, classes if voted else None)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        ids = None if self.track_ids is None else self.track_ids[index]
        classes = None if self.track_labels is None else self.track_labels[index]
        return Detections(self.boxes[index], self.scores[index], self.labels[index], ids, classes)

    @property
    def shown_labels(self) -> np.ndarray:
        """The class to show for each box: its track's when tracked, else the detector's."""
        return self.labels if self.track_labels is None else self.track_labels

    @property
    def names(self) -> list[str]:
        return [LABELS[i] for i in self.labels]

    def to_json(self) -> dict:
        """boxes, labels and scores; ``track_ids`` (null for a box that is not a confirmed track) and
        ``track_labels`` too when tracked."""
        out = {
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
            "labels": self.names,
            "scores": [round(float(s), 4) for s in self.scores],
        }
        if self.track_ids is not None:
            out["track_ids"] = [int(i) if i >= 0 else None for i in self.track_ids]
        if self.track_labels is not None:
            out["track_labels"] = [LABELS[i] for i in self.track_labels]
        return out
