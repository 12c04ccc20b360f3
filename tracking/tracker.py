"""`Tracker`: identities for detector frames and motion-predicted boxes for the frames the detector skipped.

Built on Roboflow's ``trackers`` (Apache-2.0: maintained clean-room ByteTrack, SORT and OC-SORT with timestamped,
variable-rate updates) rather than a hand-written tracker. Every update carries the frame's timestamp, so the
Kalman step and the lost-track budget follow the source's real time whatever its FPS or detector interval, which
is where trackers that assume a detection every 1/30 s go wrong.
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker
from trackers.utils.predict_timing import PredictTiming

from core.detections import Detections
from tracking.config import TrackConfig

log = logging.getLogger(__name__)
TRACKERS = {"bytetrack": ByteTrackTracker, "sort": SORTTracker, "ocsort": OCSORTTracker}
LIBRARY_FPS = 30.0  # ``trackers`` counts lost_track_buffer in frames of a 30 FPS video


def make_tracker(cfg: TrackConfig, fps: float):
    """The configured ``trackers`` tracker for a source of ``fps`` frames per second."""
    kwargs = dict(lost_track_buffer=max(1, round(cfg.lost_seconds * LIBRARY_FPS)), frame_rate=fps,
                  minimum_consecutive_frames=cfg.min_hits, minimum_iou_threshold=cfg.min_iou)
    if cfg.tracker in ("bytetrack", "sort"):
        kwargs["track_activation_threshold"] = cfg.activation_score
    if cfg.tracker in ("bytetrack", "ocsort"):
        kwargs["high_conf_det_threshold"] = cfg.high_score
    return TRACKERS[cfg.tracker](**kwargs)


class Tracker:
    """One stream's tracks. Call `update` on detector frames and `predict` on the others, in frame order.

    A track keeps the class and score of the detection that last updated it; `predict` draws each track that the
    last detector frame saw at its Kalman position for the new timestamp, without changing the tracker's state,
    and holds the boxes that had no confirmed track yet where they were (so early frames are not empty).
    """

    def __init__(self, cfg: TrackConfig, fps: float):
        self.cfg, self.fps = cfg, fps
        self.tracker = make_tracker(cfg, fps)
        self.last: dict[int, tuple[int, float]] = {}  # track id -> (label, score) of its latest detection
        self.seen: set[int] = set()
        self.last_timestamp: float | None = None
        self.unconfirmed = Detections(track_ids=np.zeros(0, np.int64))

    def update(self, detections: Detections, timestamp: float) -> Detections:
        """``detections`` with ``track_ids`` (-1 where no confirmed track matched), in their own order."""
        if self.last_timestamp is not None and timestamp <= self.last_timestamp:
            timestamp = self.last_timestamp + 1e-6  # a repeated timestamp would skip the Kalman predict
        self.last_timestamp = timestamp
        sv_dets = sv.Detections(xyxy=detections.boxes.astype(np.float32), confidence=detections.scores,
                                class_id=detections.labels, data={"index": np.arange(len(detections))})
        tracked = self.tracker.update(sv_dets, timestamp=timestamp)
        ids = np.full(len(detections), -1, np.int64)
        if len(tracked):
            ids[np.asarray(tracked.data["index"], int)] = tracked.tracker_id
        for i in np.flatnonzero(ids >= 0):
            self.last[int(ids[i])] = (int(detections.labels[i]), float(detections.scores[i]))
        self.seen.update(int(i) for i in ids[ids >= 0])
        alive = {t.tracker_id for t in self.tracker.tracks}
        self.last = {k: v for k, v in self.last.items() if k in alive}
        tracked = Detections(detections.boxes, detections.scores, detections.labels, ids)
        self.unconfirmed = tracked[ids < 0]
        return tracked

    def predict(self, timestamp: float) -> Detections:
        """Boxes of the tracks the last update matched, moved to ``timestamp`` by their motion model."""
        if self.last_timestamp is None:
            return Detections(track_ids=np.zeros(0, np.int64))
        elapsed = max(timestamp - self.last_timestamp, 0.0)
        timing = PredictTiming(frame_step=elapsed * self.fps, elapsed_seconds=elapsed, frame_rate=self.fps)
        boxes, scores, labels, ids = [], [], [], []
        for track in self.tracker.tracks:
            if track.tracker_id < 0 or track.time_since_update > 0 or track.tracker_id not in self.last:
                continue
            moved = copy.deepcopy(track)
            if elapsed > 0:
                moved.predict(timing)
            label, score = self.last[track.tracker_id]
            boxes.append(moved.get_state_bbox())
            scores.append(score)
            labels.append(label)
            ids.append(track.tracker_id)
        moved = Detections(np.reshape(boxes, (-1, 4)), scores, labels, ids)
        return Detections.merge([moved, self.unconfirmed])

    @property
    def tracks_seen(self) -> int:
        """How many distinct confirmed tracks this stream has had."""
        return len(self.seen)
