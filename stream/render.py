"""The overlay: boxes, labels and a HUD drawn per frame, sized to the frame so they read the same at any resolution.

Annotators draw in place on the frame they are given (supervision style); `Overlay` copies first, because other
stages may still hold the captured frame.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from core.detections import Detections
from core.labels import LABELS
from stream.config import RenderConfig

Color = tuple[int, int, int]

# BGR, indexed by driving class id: vehicles in blues/purples, people orange, signals and signs in greens/yellows.
PALETTE: tuple[Color, ...] = (
    (128, 128, 128),  # background
    (255, 144, 30),   # car
    (180, 105, 255),  # truck
    (255, 0, 170),    # bus
    (0, 215, 255),    # motorcycle
    (0, 255, 200),    # bicycle
    (0, 140, 255),    # person
    (50, 205, 50),    # traffic_light
    (60, 60, 230),    # stop_sign
    (0, 255, 255),    # speed_limit
    (255, 255, 0),    # crosswalk_sign
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(label: int) -> Color:
    """Fixed colour of a driving class id, so a class looks the same in every frame and every run."""
    return PALETTE[int(label) % len(PALETTE)]


def box_thickness(shape: tuple[int, ...]) -> int:
    """2 px at 640x360, 1 px at 320x180, 6 px at 1920x1080."""
    return max(1, round(min(shape[:2]) / 180))


def text_style(frame_height: int) -> tuple[float, int]:
    """Font scale and thickness for a frame height: grows with the frame, with a floor that keeps 180 p legible."""
    scale = 0.25 + frame_height / 1350
    return scale, max(1, round(scale * 2))


def text_color(background: Color) -> Color:
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    b, g, r = background
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


class BoxAnnotator:
    """Axis-aligned boxes in the class colour; plain 8-connected lines, since AA buys nothing for them."""

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        thickness = box_thickness(scene.shape)
        for box, label in zip(np.round(detections.boxes).astype(int), detections.labels):
            x1, y1, x2, y2 = box
            cv2.rectangle(scene, (x1, y1), (x2, y2), class_color(label), thickness, cv2.LINE_8)
        return scene


class LabelAnnotator:
    """``name score`` (``#id name score`` for a tracked box) on a filled tag above each box; inside the box when
    there is no room above, never off-frame."""

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        scale, thickness = text_style(scene.shape[0])
        ids = detections.track_ids if detections.track_ids is not None else np.full(len(detections), -1)
        for box, label, score, track in zip(detections.boxes, detections.labels, detections.scores, ids):
            text = f"{'#%d ' % track if track >= 0 else ''}{LABELS[label]} {score:.2f}"
            self.draw_tag(scene, text, box, class_color(label), scale, thickness)
        return scene

    @staticmethod
    def draw_tag(
        scene: np.ndarray, text: str, box: np.ndarray, color: Color, scale: float, thickness: int
    ) -> None:
        (tw, th), baseline = cv2.getTextSize(text, FONT, scale, thickness)
        pad = max(2, th // 4)
        tag_w, tag_h = tw + 2 * pad, th + baseline + 2 * pad
        height, width = scene.shape[:2]
        x = int(min(max(box[0], 0), max(width - tag_w, 0)))
        y = int(box[1]) - tag_h if box[1] >= tag_h else int(max(box[1], 0))
        y = min(y, max(height - tag_h, 0))
        cv2.rectangle(scene, (x, y), (x + tag_w - 1, y + tag_h - 1), color, cv2.FILLED)
        cv2.putText(scene, text, (x + pad, y + pad + th), FONT, scale, text_color(color), thickness, cv2.LINE_AA)


class TrailAnnotator:
    """A short polyline per track through the bottom centres of its last ``length`` boxes (where it touches the
    road). Keeps the history itself, so it must see the frames in order (the render stage runs one worker)."""

    def __init__(self, length: int):
        self.length = length
        self.history: dict[int, deque[tuple[int, int]]] = {}

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        if detections.track_ids is None or self.length < 2:
            return scene
        present = set()
        for box, label, track in zip(detections.boxes, detections.labels, detections.track_ids):
            if track < 0:
                continue
            present.add(int(track))
            points = self.history.setdefault(int(track), deque(maxlen=self.length))
            points.append((int(round((box[0] + box[2]) / 2)), int(round(box[3]))))
            if len(points) > 1:
                cv2.polylines(scene, [np.array(points, np.int32)], False, class_color(label),
                              box_thickness(scene.shape), cv2.LINE_AA)
        for gone in set(self.history) - present:
            del self.history[gone]
        return scene


@dataclass
class HudStats:
    """What the HUD shows: pipeline throughput, per-stage latency in ms and frames dropped so far."""

    fps: float
    stage_ms: dict[str, float]
    dropped: int


class HudAnnotator:
    """A darkened panel in the bottom-left corner (near road, where dashcam detections are rarest) with FPS,
    per-stage ms and dropped frames.

    Only the panel's pixels are blended, so the cost doesn't grow with the frame.
    The text is drawn once per distinct `HudStats` into a coverage mask that later frames are blended with: two
    OpenCV calls a frame instead of fifteen, each of which hands the GIL to the pipeline's other threads (behind
    them, 0.6 against 3.1 ms of CPU a 640x360 frame; alone, 0.14 against 0.26).
    """

    def __init__(self, opacity: float = 0.6):
        self.keep = 1.0 - opacity
        self._key: tuple[tuple[int, ...], HudStats] | None = None
        self._layer: tuple[slice, slice, np.ndarray, np.ndarray, np.ndarray] = (
            slice(0), slice(0), np.ones(0), np.zeros(0), np.zeros(0, np.uint8))

    def annotate(self, scene: np.ndarray, stats: HudStats) -> np.ndarray:
        if self._key != (scene.shape, stats):
            self._key, self._layer = (scene.shape, stats), self._draw_text(scene.shape, stats)
        rows, cols, background, text, white = self._layer
        panel = cv2.convertScaleAbs(scene[rows, cols], alpha=self.keep)
        scene[rows, cols] = cv2.blendLinear(panel, white, background, text)
        return scene

    @staticmethod
    def _draw_text(shape: tuple[int, ...],
                   stats: HudStats) -> tuple[slice, slice, np.ndarray, np.ndarray, np.ndarray]:
        """The panel's rows and columns in the frame, the blend weights of the panel and of its white text there
        ((h, w) float32 each, summing to 1), and the white (h, w, C) uint8 image the text weight applies to."""
        lines = [f"FPS {stats.fps:.1f}"]
        lines += [f"{name} {ms:.1f} ms" for name, ms in stats.stage_ms.items()]
        lines.append(f"dropped {stats.dropped}")
        scale, thickness = text_style(shape[0])
        scale = max(0.35, 0.8 * scale)  # a notch below the labels: the HUD is read less often than the boxes
        sizes = [cv2.getTextSize(line, FONT, scale, thickness)[0] for line in lines]
        line_h = max(h for _, h in sizes) * 1.6
        pad = max(4, int(line_h * 0.4))
        height, width = shape[:2]
        y0 = max(0, height - pad - int(pad + line_h * len(lines)))
        rows, cols = slice(y0, max(y0, height - pad)), slice(pad, min(width, 2 * pad + max(w for w, _ in sizes) + pad))
        mask = np.zeros((rows.stop - rows.start, max(0, cols.stop - cols.start)), np.uint8)
        for i, line in enumerate(lines):
            org = (pad, int(line_h * (i + 0.8)) + pad // 2)
            cv2.putText(mask, line, org, FONT, scale, 255, thickness, cv2.LINE_AA)
        text = mask.astype(np.float32) / 255
        return rows, cols, 1 - text, text, np.full((*mask.shape, shape[2]), 255, np.uint8)


class Overlay:
    """The render stage: annotated copy of a frame with boxes, optional labels and an optional HUD."""

    def __init__(self, cfg: RenderConfig, trail: int = 0):
        self.cfg = cfg
        self.boxes = BoxAnnotator()
        self.labels = LabelAnnotator()
        self.trails = TrailAnnotator(trail)
        self.hud = HudAnnotator()

    def __call__(self, image: np.ndarray, detections: Detections, hud: HudStats | None = None,
                 size: tuple[int, int] | None = None) -> np.ndarray:
        """An annotated copy of ``image``, at ``size`` (width, height) when given: the frame is scaled first and
        drawn at the size it is shown, which at 1080p costs less than drawing at full size and scaling after."""
        if size is not None and size != (image.shape[1], image.shape[0]):
            scene = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale = np.array([size[0] / image.shape[1], size[1] / image.shape[0]] * 2, np.float32)
            detections = Detections(detections.boxes * scale, detections.scores, detections.labels,
                                    detections.track_ids)
        else:
            scene = image.copy()
        self.trails.annotate(scene, detections)
        self.boxes.annotate(scene, detections)
        if self.cfg.labels:
            self.labels.annotate(scene, detections)
        if self.cfg.hud and hud is not None:
            self.hud.annotate(scene, hud)
        return scene
