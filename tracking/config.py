"""The tracking config section (``track.*``), loaded by the one config loader as part of a pipeline config."""
from __future__ import annotations

import dataclasses
from typing import Literal

from core.config import validate


@dataclasses.dataclass
class TrackConfig:
    """Multi-object tracking after the class-wise NMS stage (Roboflow's ``trackers`` library).

    ``tracker``: bytetrack, sort or ocsort. ``lost_seconds``: how long a track survives without a detection, in
    seconds of the source's own time (so 1 s is 30 frames at 30 FPS and 12 at 12 FPS). ``activation_score``: a new
    track needs a detection at least this confident; ``high_score``: ByteTrack's first-stage split; ``min_iou``:
    association IoU; ``min_hits``: detector frames before an ID is given; ``trail``: frames of trail drawn.
    ``motion``: how boxes move on the frames the detector skips (``model.interval`` > 1): ``flow`` by the image's
    optical flow from the frame before (`tracking.flow`), ``kalman`` by each track's constant-velocity prediction
    (cheaper, but it lags turning and braking cars). ``fill``: which detector frames fill the frames skipped in a
    video file (with ``flow``): ``auto`` both around them, the earlier one's boxes moved forward and the later
    one's moved back, then blended (`tracking.interpolate`; a skipped frame is written once the next detector
    frame is done, so k - 1 frames later), ``forward`` only the earlier one, as on a live source, which never
    waits.
    """

    enabled: bool = True
    tracker: Literal["bytetrack", "sort", "ocsort"] = "bytetrack"
    lost_seconds: float = 1.0
    activation_score: float = 0.5
    high_score: float = 0.5
    min_iou: float = 0.1
    min_hits: int = 2
    trail: int = 20
    motion: Literal["flow", "kalman"] = "flow"
    fill: Literal["auto", "forward"] = "auto"

    def __post_init__(self) -> None:
        validate(
            (self.lost_seconds > 0, f"'track.lost_seconds' must be > 0, got {self.lost_seconds}"),
            (self.min_hits >= 1, f"'track.min_hits' must be >= 1, got {self.min_hits}"),
            (self.trail >= 0, f"'track.trail' must be >= 0, got {self.trail}"),
            *((0.0 <= getattr(self, key) <= 1.0, f"'track.{key}' must be in [0, 1], got {getattr(self, key)}")
              for key in ("activation_score", "high_score", "min_iou")),
        )
