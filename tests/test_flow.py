"""Median-flow box propagation (`tracking.flow`): a textured patch moved and scaled by a known amount is followed
to about a pixel, and a texture-less box falls back."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tracking import flow


def background(width: int, height: int) -> np.ndarray:
    """A smooth grey ramp: no texture for flow to lock on to."""
    ramp = np.linspace(60, 180, width, dtype=np.float32)
    return np.repeat(np.broadcast_to(ramp, (height, width))[..., None], 3, axis=2).astype(np.uint8)


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Random blobs about 4 px across (a car's texture at 360p, roughly), covering the whole frame."""
    small = np.random.default_rng(seed).integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def affine(box: np.ndarray, shift: tuple[float, float], scale: float) -> np.ndarray:
    """The map that scales about ``box``'s centre by ``scale`` and then shifts by ``shift``: (2, 3)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return np.array([[scale, 0, cx + shift[0] - scale * cx], [0, scale, cy + shift[1] - scale * cy]], np.float32)


def render(box: np.ndarray, width: int, height: int, warp: np.ndarray | None = None) -> np.ndarray:
    """The texture inside ``box`` on the background, or that frame's object warped by ``warp``."""
    layer, mask = texture(width, height), np.zeros((height, width), np.float32)
    x1, y1, x2, y2 = np.round(box).astype(int)
    mask[y1:y2, x1:x2] = 1.0
    if warp is not None:
        layer = cv2.warpAffine(layer, warp, (width, height), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, warp, (width, height), flags=cv2.INTER_LINEAR)
    mask = mask[..., None]
    return (layer * mask + background(width, height) * (1 - mask)).astype(np.uint8)


def warped_box(box: np.ndarray, warp: np.ndarray) -> np.ndarray:
    corners = np.array([[box[0], box[1], 1.0], [box[2], box[3], 1.0]])
    return (corners @ warp.T).ravel()


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
@pytest.mark.parametrize("shift,scale", [((6.0, -4.0), 1.0), ((-3.5, 2.5), 1.06), ((2.0, 1.0), 0.95)])
def test_a_textured_box_moved_and_scaled_is_followed_to_a_pixel(size, shift, scale):
    width, height = size
    factor = width / 640  # the same scene at either resolution
    box = np.array([200, 120, 320, 210], np.float32) * factor
    warp = affine(box, (shift[0] * factor, shift[1] * factor), scale)
    truth = warped_box(box, warp)
    previous, current = render(box, width, height), render(box, width, height, warp)
    moved, ok = flow.propagate(flow.prepare(previous), flow.prepare(current), box[None])
    assert ok.tolist() == [True]
    assert np.abs(moved[0] - truth).max() <= 1.0 * factor  # within a pixel of the 360p image flow runs on
    width_ratio = (moved[0, 2] - moved[0, 0]) / (truth[2] - truth[0])
    assert width_ratio == pytest.approx(1.0, abs=0.02)


def test_a_textureless_box_is_left_where_it_was_and_flagged():
    width, height = 640, 360
    textured = np.array([200, 120, 320, 210], np.float32)
    plain = np.array([450, 60, 560, 150], np.float32)  # on the smooth ramp only
    warp = affine(textured, (5.0, 0.0), 1.0)
    previous, current = render(textured, width, height), render(textured, width, height, warp)
    moved, ok = flow.propagate(flow.prepare(previous), flow.prepare(current), np.stack([textured, plain]))
    assert ok.tolist() == [True, False]
    assert moved[1].tolist() == plain.tolist()
    empty, none_ok = flow.propagate(flow.prepare(previous), flow.prepare(current), np.zeros((0, 4)))
    assert empty.shape == (0, 4) and none_ok.shape == (0,)
