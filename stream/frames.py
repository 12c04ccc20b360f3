"""`Frame`: the item that flows through the pipeline's queues, filled in stage by stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.detections import Detections


@dataclass
class Frame:
    """One captured image and what the stages added to it.

    index: decoded frame number (gaps mean dropped or skipped frames); timestamp: seconds in source time;
    captured_at: ``time.perf_counter()`` at capture, for end-to-end latency; image: (H, W, 3) uint8 BGR;
    detect: whether the detector runs on it (else the tracker predicts its boxes, see `stream.interval`);
    coarse: a detector frame run at the base size, its small classes carried by the tracker
    (``model.full_size_every``);
    source_time: the source's own timestamp in seconds (a stream's presentation time) where it gives one;
    source_id: the name of the source it came from (a run may have several); meta: what a stage added that the
    fields above do not hold, by key, so a new stage or sink needs no new field.
    """

    index: int
    timestamp: float
    captured_at: float
    image: np.ndarray
    detect: bool = True
    coarse: bool = False
    detections: Detections | None = None
    annotated: np.ndarray | None = None
    source_time: float | None = None
    source_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image as the source gave it: the pixels its boxes are in."""
        return self.image.shape[1], self.image.shape[0]

    @property
    def boxes_from(self) -> str:
        """``detector`` or ``tracker``: where this frame's boxes came from."""
        return "detector" if self.detect else "tracker"
