"""The overlay: boxes in class colours at the right place, labels kept on-frame and scaled, a cheap HUD."""
from __future__ import annotations

import numpy as np
import pytest

from core.detections import Detections
from core.labels import LABEL_IDS
from stream.config import RenderConfig
from stream.render import HudStats, LabelAnnotator, Overlay, class_color, place_tags, tag_size, text_style

CAR = LABEL_IDS["car"]
STATS = HudStats(fps=24.5, stage_ms={"capture": 1.5, "infer": 41.2, "render": 0.8}, dropped=2)


def blank(width: int = 640, height: int = 360) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


def one(box: tuple[float, float, float, float], label: int = CAR, score: float = 0.87) -> Detections:
    return Detections(np.array([box]), np.array([score]), np.array([label]))


def label_rows(width: int, height: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """Row indices where the label (and nothing else) changed the frame."""
    plain = Overlay(RenderConfig(hud=False, labels=False))(blank(width, height), one(box))
    labelled = Overlay(RenderConfig(hud=False, labels=True))(blank(width, height), one(box))
    return np.flatnonzero(np.any(plain != labelled, axis=(1, 2)))


def test_box_edges_are_drawn_in_the_class_colour() -> None:
    out = Overlay(RenderConfig(hud=False, labels=False))(blank(), one((100, 80, 300, 200)))
    colour = class_color(CAR)
    assert np.all(out[90:190, 100] == colour)
    assert np.all(out[90:190, 300] == colour)
    assert np.all(out[80, 110:290] == colour)
    assert np.all(out[200, 110:290] == colour)
    assert not out[120:160, 150:250].any()
    assert not out[250:, :].any()


def test_classes_get_different_colours() -> None:
    boxes = Detections(np.array([[10, 10, 60, 60], [100, 10, 160, 60]]), np.array([0.9, 0.9]),
                       np.array([CAR, LABEL_IDS["stop_sign"]]))
    out = Overlay(RenderConfig(hud=False, labels=False))(blank(), boxes)
    assert tuple(out[30, 10]) == class_color(CAR)
    assert tuple(out[30, 100]) == class_color(LABEL_IDS["stop_sign"])
    assert class_color(CAR) != class_color(LABEL_IDS["stop_sign"])


@pytest.mark.parametrize("box", [(5, 0, 120, 60), (590, -20, 660, 40), (600, 330, 640, 360)])
def test_label_at_the_frame_edge_stays_whole_and_inside(box: tuple[float, float, float, float]) -> None:
    labels = LabelAnnotator()
    centred = labels.annotate(blank(), one((300, 150, 400, 250))).any(axis=2)
    edge = labels.annotate(blank(), one(box)).any(axis=2)
    assert edge.sum() == centred.sum() > 0
    rows, cols = np.flatnonzero(edge.any(axis=1)), np.flatnonzero(edge.any(axis=0))
    assert rows.min() >= 0 and cols.max() <= 639
    assert rows.min() <= max(box[1], 0) + 1 or rows.max() >= box[1] - 1


def test_label_sits_above_the_box_when_there_is_room() -> None:
    rows = label_rows(640, 360, (200, 150, 300, 250))
    assert rows.max() < 150 and rows.min() > 120


def test_label_height_scales_with_frame_height() -> None:
    heights = [
        np.ptp(label_rows(w, h, (0.3 * w, 0.3 * h, 0.6 * w, 0.8 * h))) + 1
        for w, h in ((320, 180), (640, 360), (1920, 1080))
    ]
    assert heights[0] >= 12
    assert heights[0] < heights[1] < heights[2]
    assert heights[2] > 2 * heights[0]


def test_box_thickness_scales_with_frame_size() -> None:
    out = Overlay(RenderConfig(hud=False, labels=False))(blank(1920, 1080), one((600, 300, 1200, 900)))
    column = np.all(out[600, 590:620] == class_color(CAR), axis=1)
    assert column.sum() >= 4


@pytest.mark.parametrize("corner", ["top-left", "top-right", "bottom-left", "bottom-right"])
def test_hud_is_a_compact_semi_transparent_panel_in_its_corner_and_nothing_else(corner: str) -> None:
    grey = np.full((360, 640, 3), 128, np.uint8)
    out = Overlay(RenderConfig(labels=False, hud_corner=corner))(grey, Detections(), STATS)
    changed = np.argwhere(np.any(out != 128, axis=-1))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    assert (top < 20) == corner.startswith("top") and (bottom > 340) == corner.startswith("bottom")
    assert (left < 20) == corner.endswith("left") and (right > 620) == corner.endswith("right")
    assert (bottom - top) * (right - left) < 0.12 * 360 * 640  # compact: an eighth of the frame at most
    panel = out[top:bottom, left:right]
    assert 40 < np.median(panel) < 100  # darkened, and the scene shows through
    assert (panel == 255).any()  # white text


def test_hud_text_follows_the_stats_it_is_given_frame_after_frame() -> None:
    """The text is drawn once per distinct stats and blended from then on: new numbers must still show."""
    overlay, grey = Overlay(RenderConfig(labels=False)), np.full((360, 640, 3), 128, np.uint8)
    first = overlay(grey, Detections(), STATS)
    assert np.array_equal(overlay(grey, Detections(), STATS), first)
    slower = HudStats(fps=9.5, stage_ms={"capture": 1.5, "infer": 98.7, "render": 0.8}, dropped=2)
    changed = overlay(grey, Detections(), slower)
    assert not np.array_equal(changed, first)
    assert np.array_equal(changed, Overlay(RenderConfig(labels=False))(grey, Detections(), slower))
    assert np.array_equal(overlay(grey, Detections(), STATS), first)


@pytest.mark.parametrize("cfg, stats", [(RenderConfig(hud=False), STATS), (RenderConfig(hud=True), None)])
def test_hud_is_skipped_when_off_or_without_stats(cfg: RenderConfig, stats: HudStats | None) -> None:
    grey = np.full((360, 640, 3), 128, np.uint8)
    assert np.all(Overlay(cfg)(grey, Detections(), stats) == 128)


@pytest.mark.parametrize("width, height", [(320, 180), (1920, 1080)])
def test_overlay_leaves_the_input_untouched(width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), np.uint8)
    before = image.copy()
    box = (0.1 * width, 0.1 * height, 0.5 * width, 0.6 * height)
    out = Overlay(RenderConfig())(image, one(box), STATS)
    assert np.array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_a_tracked_box_is_labelled_with_its_id_and_draws_a_trail(monkeypatch) -> None:
    texts = []
    real = LabelAnnotator.draw_tag

    def spy(scene, text, *args):
        texts.append(text)
        return real(scene, text, *args)

    monkeypatch.setattr(LabelAnnotator, "draw_tag", staticmethod(spy))
    overlay = Overlay(RenderConfig(hud=False), trail=10)
    for i in range(5):
        x = 100 + 20 * i
        tracked = Detections([[x, 100, x + 60, 160], [400, 50, 430, 90]], [0.87, 0.6], [CAR, CAR], [7, -1])
        scene = overlay(blank(), tracked)
    assert texts[-2:] == ["#7 car 0.87", "car 0.60"]  # an unconfirmed box has no id
    trail = scene[158:163, 130:175]  # the bottom centres of earlier frames' boxes, left of the last box
    assert (trail == class_color(CAR)).all(axis=-1).any()
    untracked = Overlay(RenderConfig(hud=False), trail=10)(blank(), one((400, 200, 460, 260)))
    assert not (untracked[158:163, 130:175] == class_color(CAR)).all(axis=-1).any()


def test_an_overlay_at_a_smaller_size_scales_the_frame_and_its_boxes() -> None:
    """Drawn at the output size (1080p source, 720p video): the box lands where the scaled object is."""
    image = blank(1920, 1080)
    image[300:900, 600:1200] = 200
    out = Overlay(RenderConfig(hud=False, labels=False))(image, one((600, 300, 1200, 900)), size=(1280, 720))
    assert out.shape == (720, 1280, 3)
    colour = class_color(CAR)
    assert np.all(out[250:550, 400] == colour) and np.all(out[250:550, 800] == colour)
    assert np.all(out[300:500, 450:750] == 200)  # the frame's content, scaled with it


def test_no_two_labels_overlap_on_a_crowded_frame() -> None:
    """A row of parked cars and a group of people, boxes overlapping: every tag in frame, none over another."""
    rng = np.random.default_rng(0)
    cars = [[40 + 70 * i, 560, 140 + 70 * i, 640] for i in range(16)]
    people = [[900 + 25 * i + rng.integers(0, 10), 400, 940 + 25 * i, 520] for i in range(14)]
    boxes = np.array(cars + people, np.float32)
    scale, thickness = text_style(1080)
    sizes = [tag_size(f"#{i} {'car' if i < 16 else 'person'} 0.87", scale, thickness) for i in range(len(boxes))]
    rects = place_tags(boxes, sizes, (1920, 1080))
    for i, (x, y, w, h) in enumerate(rects):
        assert 0 <= x and x + w <= 1920 and 0 <= y and y + h <= 1080
        for x2, y2, w2, h2 in rects[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "two labels overlap"
    above = [y + h <= box[1] for (x, y, w, h), box in zip(rects, boxes)]
    assert above[0]  # the first (surest) box keeps the place above it


def test_drawn_labels_do_not_cut_each_other_off(monkeypatch) -> None:
    drawn = []
    real = LabelAnnotator.draw_tag

    def spy(scene, text, rect, *args):
        drawn.append(rect)
        return real(scene, text, rect, *args)

    monkeypatch.setattr(LabelAnnotator, "draw_tag", staticmethod(spy))
    row = Detections([[20 + 40 * i, 200, 90 + 40 * i, 260] for i in range(12)], [0.9] * 12, [CAR] * 12)
    Overlay(RenderConfig(hud=False))(blank(), row)
    assert len(drawn) == 12
    for i, (x, y, w, h) in enumerate(drawn):
        assert all(x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y for x2, y2, w2, h2 in drawn[i + 1:])


def test_trails_are_smoothed() -> None:
    """A box whose bottom jitters by +-6 px draws a trail whose points move far less."""
    overlay = Overlay(RenderConfig(hud=False, labels=False), trail=20)
    for i in range(20):
        y = 200 + (6 if i % 2 else -6)
        overlay(blank(), Detections([[100 + 5 * i, y - 60, 160 + 5 * i, y]], [0.9], [CAR], [3]))
    ys = [p[1] for p in overlay.trails.history[3]]
    assert max(ys[5:]) - min(ys[5:]) < 6
