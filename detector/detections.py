"""`Detections`: the one currency between the model, the NMS stage, the overlay, the sinks and evaluation."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.labels import LABELS


@dataclass
class Detections:
    """Boxes of one image in source pixels.

    boxes: (N, 4) float32 xyxy; scores: (N,) float32; labels: (N,) int64 driving class ids (see `labels.LABELS`).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError(
                f"boxes, scores and labels differ in length: {len(self.boxes)}, {len(self.scores)}, {len(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.labels[index])

    @property
    def names(self) -> list[str]:
        return [LABELS[i] for i in self.labels]

    def to_json(self) -> dict:
        return {
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
            "labels": self.names,
            "scores": [round(float(s), 4) for s in self.scores],
        }
