"""`Tracker`: identities for detector frames and motion-predicted boxes for the frames the detector skipped.

Built on Roboflow's ``trackers`` (Apache-2.0: maintained clean-room ByteTrack, SORT and OC-SORT with timestamped,
variable-rate updates) rather than a hand-written tracker. Every update carries the frame's timestamp, so the
Kalman step and the lost-track budget follow the source's real time whatever its FPS or detector interval, which
is where trackers that assume a detection every 1/30 s go wrong.

On the frames the detector skips, ``track.motion=flow`` (the default) moves the boxes shown on the frame before by
the image's optical flow (`tracking.flow`), frame to frame; ``kalman`` draws the tracks at their constant-velocity
prediction, which lags turning and braking cars (docs/benchmarks.md "Tracking and detect-every-k").
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker
from trackers.utils.predict_timing import PredictTiming

from core.detections import Detections
from core.labels import CLASS_GROUPS, GROUP_IDS, NUM_CLASSES
from tracking import flow, interpolate
from tracking.config import TrackConfig

log = logging.getLogger(__name__)
TRACKERS = {"bytetrack": ByteTrackTracker, "sort": SORTTracker, "ocsort": OCSORTTracker}
LIBRARY_FPS = 30.0  # ``trackers`` counts lost_track_buffer in frames of a 30 FPS video
GROUP_OF = np.asarray(GROUP_IDS, np.int64)  # one tracker per class group: a match never crosses groups
MIN_CARRIED_PX = 2.0  # a carried box narrower or lower than this (left the frame, shrunk by the motion) is dropped
CARRY_OVERLAP = 0.3  # a detection overlapping a box carried for its size this much stands for it (same object)
SWITCH_MARGIN = 1.5  # a track's class changes only when another class's summed scores pass it by this factor


def make_tracker(cfg: TrackConfig, fps: float):
    """The configured ``trackers`` tracker for a source of ``fps`` frames per second."""
    kwargs = dict(lost_track_buffer=max(1, round(cfg.lost_seconds * LIBRARY_FPS)), frame_rate=fps,
                  minimum_consecutive_frames=cfg.min_hits, minimum_iou_threshold=cfg.min_iou)
    if cfg.tracker in ("bytetrack", "sort"):
        kwargs["track_activation_threshold"] = cfg.activation_score
    if cfg.tracker in ("bytetrack", "ocsort"):
        kwargs["high_conf_det_threshold"] = cfg.high_score
    return TRACKERS[cfg.tracker](**kwargs)


def carried(shown: Detections, carry: frozenset[int], carry_below: float) -> np.ndarray:
    """Which of ``shown`` a base-size detector frame carries: the ``carry`` classes and boxes too small."""
    short = np.minimum(shown.boxes[:, 2] - shown.boxes[:, 0], shown.boxes[:, 3] - shown.boxes[:, 1])
    return np.isin(shown.labels, list(carry)) | (short < carry_below)


class Tracker:
    """One stream's tracks. Call `update` on detector frames and `predict` on the others, in frame order, with each
    frame's image when ``track.motion`` is ``flow``.

    A track keeps the class and score of the detection that last updated it, and a class by vote: the scores of
    its detections summed per class; the leader changes only when another class's sum passes it by
    `SWITCH_MARGIN`, so an id keeps one class through a few wrong guesses (``track_labels``). `predict` never
    changes the tracker's state: with flow it moves the boxes of the frame before (ids, labels and scores kept)
    from that frame's image to this one's; without (``kalman``, no image, or a box whose points flow cannot
    follow) it draws each track that the last detector frame saw at its Kalman position for the new timestamp and
    holds the boxes that had no confirmed track yet where they were (so early frames are not empty).
    """

    def __init__(self, cfg: TrackConfig, fps: float):
        self.cfg, self.fps = cfg, fps
        # One tracker per class group: a track never passes from a car to a person walking past it
        self.trackers = [make_tracker(cfg, fps) for _ in CLASS_GROUPS]
        self.ids: dict[tuple[int, int], int] = {}  # (group, the library's id) -> the stream's id, numbered in order
        self.last: dict[int, tuple[int, float]] = {}  # track id -> (label, score) of its latest detection
        self.votes: dict[int, np.ndarray] = {}  # track id -> summed detection scores per class
        self.voted: dict[int, int] = {}  # track id -> its class by vote
        self.seen: set[int] = set()
        self.last_timestamp: float | None = None
        self.unconfirmed = Detections(track_ids=np.zeros(0, np.int64), track_labels=np.zeros(0, np.int64))
        self.use_flow = cfg.motion == "flow"
        # the frame before, for flow: its boxes as shown, its image (a reference, made grey only when a predict
        # needs it, so detecting every frame costs nothing) and that grey image once made
        self.shown = self.unconfirmed
        self.image: np.ndarray | None = None
        self.grey: flow.FlowImage | None = None
        # flow images `predict` made since the last update, and those of the frames skipped before it (for `fill`)
        self.since_update: list[flow.FlowImage] = []
        self.skipped_greys: list[flow.FlowImage] = []

    def update(self, detections: Detections, timestamp: float, image: np.ndarray | None = None,
               carry: frozenset[int] = frozenset(), carry_below: float = 0.0) -> Detections:
        """``detections`` with ``track_ids`` (-1 where no confirmed track matched), in their own order.

        ``image``: the frame (BGR), kept for flow on the next frame when it is not a detector frame. ``carry``:
        class ids this detector frame cannot see (a base-size pass, ``model.full_size_every``): their detections
        are replaced by the boxes of the frame before, moved here by flow (`_carry`), so their tracks go on as on
        a frame the detector skipped. ``carry_below``: boxes of any class whose short side is below this
        many pixels are moved here too (too small for such a pass), unless a detection overlaps one (IoU >=
        `CARRY_OVERLAP`), which then stands for it.
        """
        grey = None  # this frame made grey for flow, kept for the next frame's
        self.skipped_greys, self.since_update = self.since_update, []
        if carry or carry_below > 0:
            detections = detections[~np.isin(detections.labels, list(carry))]
            moved, grey = self._carry(timestamp, image, carry, carry_below)
            by_size = ~np.isin(moved.labels, list(carry))
            if by_size.any() and len(detections):
                found = sv.box_iou_batch(moved.boxes, detections.boxes).max(axis=1) >= CARRY_OVERLAP
                moved = moved[~(by_size & found)]
            detections = Detections.merge([detections, moved])
        if self.last_timestamp is not None and timestamp <= self.last_timestamp:
            timestamp = self.last_timestamp + 1e-6  # a repeated timestamp would skip the Kalman predict
        self.last_timestamp = timestamp
        ids = np.full(len(detections), -1, np.int64)
        groups = GROUP_OF[detections.labels]
        for group, tracker in enumerate(self.trackers):
            members = np.flatnonzero(groups == group)
            sv_dets = sv.Detections(xyxy=detections.boxes[members].astype(np.float32).reshape(-1, 4),
                                    confidence=detections.scores[members], class_id=detections.labels[members],
                                    data={"index": members})
            tracked = tracker.update(sv_dets, timestamp=timestamp)
            for index, local in zip(np.asarray(tracked.data.get("index", []), int), tracked.tracker_id):
                if local >= 0:
                    ids[index] = self.ids.setdefault((group, int(local)), len(self.ids))
        classes = detections.labels.copy()
        for i in np.flatnonzero(ids >= 0):
            track, label, score = int(ids[i]), int(detections.labels[i]), float(detections.scores[i])
            self.last[track] = (label, score)
            classes[i] = self._vote(track, label, score)
        self.seen.update(int(i) for i in ids[ids >= 0])
        alive = {track_id for track_id, _ in self._tracks()}
        self.last = {k: v for k, v in self.last.items() if k in alive}
        self.votes = {k: v for k, v in self.votes.items() if k in alive}
        self.voted = {k: v for k, v in self.voted.items() if k in alive}
        tracked = Detections(detections.boxes, detections.scores, detections.labels, ids, classes)
        self.unconfirmed = tracked[ids < 0]
        self._remember(tracked, image, grey)
        return tracked

    def _carry(self, timestamp: float, image: np.ndarray | None, carry: frozenset[int],
               carry_below: float) -> tuple[Detections, flow.FlowImage | None]:
        """The boxes of the frame before that `update` carries (the ``carry`` classes, boxes too small), moved to
        this frame: by flow, dropping a box flow cannot follow, since it may be carried over many frames and the
        next full-size frame finds it again; with ``kalman`` motion (or no images) at the tracks' predictions.
        Also this frame's grey image when flow made one."""
        grey = None
        if not self.use_flow or image is None or self.image is None:
            moved = self.predict(timestamp, image)
            moved = moved[carried(moved, carry, carry_below)]
        else:
            shown = self.shown[carried(self.shown, carry, carry_below)]
            if not len(shown):
                return Detections(), None
            boxes, ok, grey = self._flow(shown.boxes, image)
            moved = Detections(boxes, shown.scores, shown.labels)[ok]
        size = moved.boxes[:, 2:] - moved.boxes[:, :2]
        return Detections(moved.boxes, moved.scores, moved.labels)[(size >= MIN_CARRIED_PX).all(axis=1)], grey

    def _flow(self, boxes: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, flow.FlowImage]:
        """``boxes`` (N, 4) of the frame before moved onto ``image`` by flow: the moved boxes, (N,) whether flow
        followed each, and ``image`` made grey (kept, so the next frame does not make it again)."""
        previous = self.grey if self.grey is not None else flow.prepare(self.image)
        current = flow.prepare(image)
        moved, ok = flow.propagate(previous, current, boxes)
        return moved, ok, current

    def _vote(self, track: int, label: int, score: float) -> int:
        votes = self.votes.setdefault(track, np.zeros(NUM_CLASSES, np.float64))
        votes[label] += score
        leader = self.voted.get(track, label)
        challenger = int(np.argmax(votes))
        if votes[challenger] > SWITCH_MARGIN * votes[leader]:
            leader = challenger
        self.voted[track] = leader
        return leader

    def predict(self, timestamp: float, image: np.ndarray | None = None) -> Detections:
        """Boxes of the tracks the last update matched, moved to ``timestamp`` (and ``image``, with flow)."""
        if self.last_timestamp is None:
            return Detections(track_ids=np.zeros(0, np.int64), track_labels=np.zeros(0, np.int64))
        if not self.use_flow or image is None or self.image is None:
            shown = Detections.merge([self._kalman(timestamp), self.unconfirmed])
            self._remember(shown, image, None)
            return shown
        boxes, ok, current = self._flow(self.shown.boxes, image)
        lost = self.shown.track_ids[~ok]
        if (lost >= 0).any():  # points flow could not follow: those tracks' Kalman boxes instead
            kalman = self._kalman(timestamp, set(lost[lost >= 0].tolist()))
            at = {int(i): box for i, box in zip(kalman.track_ids, kalman.boxes)}
            for n in np.flatnonzero(~ok):
                boxes[n] = at.get(int(self.shown.track_ids[n]), boxes[n])
        shown = Detections(boxes, self.shown.scores, self.shown.labels, self.shown.track_ids, self.shown.track_labels)
        self.since_update.append(current)
        self._remember(shown, image, current)
        return shown

    def fill(self, detected: Detections, image: np.ndarray,
             skipped: list[tuple[Detections, np.ndarray, float]]) -> list[Detections]:
        """The boxes of the frames skipped between the last two detector frames, from both sides
        (`tracking.interpolate`): ``detected`` (the `update` result of the detector frame just done, on ``image``)
        moved back frame by frame by flow and blended with each skipped frame's forward boxes. Call it right after
        that `update`.

        skipped: in frame order, each frame's boxes from `predict`, its image, and how far it lies from the
        detector frame before towards this one, in (0, 1). Returns the skipped frames' boxes, in that order. A box
        flow cannot follow back, or that shrinks below `MIN_CARRIED_PX`, is left to the forward side.
        """
        later = self.grey if self.image is image and self.grey is not None else flow.prepare(image)
        if self.image is image:
            self.grey = later  # the next frame's predict moves boxes from this one
        greys = self.skipped_greys  # made by predict on these frames (flow motion), else made here
        if len(greys) != len(skipped):
            greys = [flow.prepare(earlier_image) for _, earlier_image, _ in skipped]
        back, filled = detected, []
        for (forward, _, position), earlier in zip(reversed(skipped), reversed(greys)):
            boxes, ok = flow.propagate(later, earlier, back.boxes)
            size = boxes[:, 2:] - boxes[:, :2]
            keep = ok & (size >= MIN_CARRIED_PX).all(axis=1)
            back = Detections(boxes, back.scores, back.labels, back.track_ids, back.track_labels)[keep]
            filled.append(interpolate.blend(forward, back, position))
            later = earlier
        return filled[::-1]

    def _remember(self, shown: Detections, image: np.ndarray | None, grey: flow.FlowImage | None) -> None:
        if self.use_flow:
            self.shown, self.image, self.grey = shown, image, grey

    def _kalman(self, timestamp: float, only: set[int] | None = None) -> Detections:
        """The tracks the last update matched (those in ``only`` when given) at their Kalman position at
        ``timestamp``, with the label and score of their latest detection."""
        elapsed = max(timestamp - self.last_timestamp, 0.0)
        timing = PredictTiming(frame_step=elapsed * self.fps, elapsed_seconds=elapsed, frame_rate=self.fps)
        boxes, scores, labels, ids, classes = [], [], [], [], []
        for track_id, track in self._tracks():
            if track.time_since_update > 0 or track_id not in self.last:
                continue
            if only is not None and track_id not in only:
                continue
            moved = copy.deepcopy(track)
            if elapsed > 0:
                moved.predict(timing)
            label, score = self.last[track_id]
            boxes.append(moved.get_state_bbox())
            scores.append(score)
            labels.append(label)
            ids.append(track_id)
            classes.append(self.voted.get(track_id, label))
        return Detections(np.reshape(boxes, (-1, 4)), scores, labels, ids, classes)

    def _tracks(self):
        """(the stream's id, the library's track) of every track that has an id, over all class groups."""
        for group, tracker in enumerate(self.trackers):
            for track in tracker.tracks:
                if track.tracker_id >= 0:
                    yield self.ids[(group, int(track.tracker_id))], track

    @property
    def tracks_seen(self) -> int:
        """How many distinct confirmed tracks this stream has had."""
        return len(self.seen)
