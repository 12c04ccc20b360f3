"""A short synthetic dashcam clip drawn by code, so demos and tests have footage the repository may ship.

The ego car brakes towards a stop sign behind a stopped car, with a box truck in the left lane and a red light
beyond the intersection. Everything is placed in metres and projected through a pinhole camera, so sizes and
positions change as in real footage, and `sample_ground_truth` knows every drawn object's box.

    python samples/make_sample.py [--out samples/driving_sample.mp4]
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

FRAMES = 125
FPS = 25.0
WIDTH, HEIGHT = 640, 360
SUPERSAMPLE = 2  # drawn at twice the size, then area-downscaled: smooth edges without per-shape care
DEFAULT_OUT = Path(__file__).resolve().parent / "driving_sample.mp4"

Color = tuple[int, int, int]
Box = tuple[float, float, float, float]

# World layout, metres: X right, Y up, Z ahead of the ego car's start position.
CAMERA_HEIGHT = 1.35
TRAVEL = 16.0  # how far the ego car rolls while braking over the clip
STOP_Z = 21.0  # the stop sign; the cross street spans CROSS_Z
CROSS_Z = (STOP_Z + 1.5, STOP_Z + 13.5)
ROAD_X = (-8.9, 1.9)
SIGN_X, SIGN_Y, SIGN_WIDTH = 2.5, 2.15, 0.9
LIGHT_Z = STOP_Z + 14.0
SKY_TOP, SKY_HORIZON = (214, 170, 120), (240, 226, 214)
HAZE = np.array(SKY_HORIZON, np.float32)


@dataclass(frozen=True)
class Vehicle:
    """A vehicle seen from behind, braking for the intersection like the ego car: ``z(u)`` is its rear's world Z."""

    kind: str
    x: float
    z0: float
    speed: float  # metres over the whole clip
    color: Color

    def z(self, u: float) -> float:
        return self.z0 + self.speed * braking(u)


VEHICLES = (
    Vehicle("car", 0.0, 16.0, 6.0, (150, 148, 146)),
    Vehicle("truck", -3.5, 22.0, 4.0, (206, 208, 210)),
)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at the ego car; ``travelled`` shifts the world towards it."""

    f: float
    cx: float
    horizon: float
    travelled: float

    def rel(self, z: float) -> float:
        return z - self.travelled

    def pt(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Screen point of a world point; ``z`` is world Z (the camera subtracts its travel)."""
        d = max(self.rel(z), 0.05)
        return self.cx + self.f * x / d, self.horizon + self.f * (CAMERA_HEIGHT - y) / d

    def scale(self, z: float) -> float:
        """Pixels per metre on the plane facing the camera at world ``z``."""
        return self.f / max(self.rel(z), 0.05)


def progress(index: int, frames: int = FRAMES) -> float:
    return min(max(index / (frames - 1), 0.0), 1.0)


def braking(u: float) -> float:
    """Share of the distance covered at progress ``u`` under constant deceleration to a stop."""
    return 1 - (1 - u) ** 2


def camera(index: int, width: int, height: int) -> Camera:
    """Braking: fast at first, nearly stopped at the end; a sub-pixel bob keeps the frame alive."""
    u = progress(index)
    bob = 0.0015 * height * math.sin(index * 0.9)
    return Camera(0.82 * width, width / 2, 0.45 * height + bob, TRAVEL * braking(u))


def hazed(color: Color, rel_z: float) -> Color:
    """Aerial perspective: far things fade towards the horizon sky."""
    k = 1.0 - math.exp(-max(rel_z, 0.0) / 180.0)
    mixed = (1 - k) * np.array(color, np.float32) + k * HAZE
    return tuple(int(c) for c in mixed)


def shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, c * factor)) for c in color)


def fill(img: np.ndarray, pts: list[tuple[float, float]], color: Color) -> None:
    """Anti-aliased polygon with sub-pixel vertices."""
    arr = np.round(np.array(pts, np.float64) * 16).astype(np.int32)
    cv2.fillPoly(img, [arr], color, cv2.LINE_AA, shift=4)


def fill_gradient(img: np.ndarray, pts: list[tuple[float, float]], top: Color, bottom: Color) -> None:
    """Polygon with a vertical colour gradient, blended only inside its bounding box."""
    arr = np.array(pts, np.float64)
    x0, y0 = np.floor(arr.min(0)).astype(int)
    x1, y1 = np.ceil(arr.max(0)).astype(int) + 1
    h, w = img.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    mask = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
    fill(mask, [(x - cx0, y - cy0) for x, y in pts], (255,))
    t = ((np.arange(cy0, cy1, dtype=np.float32) - y0) / max(y1 - y0, 1))[:, None, None]
    grad = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
    alpha = mask[..., None].astype(np.float32) / 255.0
    roi = img[cy0:cy1, cx0:cx1]
    roi[:] = (roi * (1 - alpha) + grad * alpha).astype(np.uint8)


def quad_on_plane_x(cam: Camera, x: float, y: tuple[float, float], z: tuple[float, float]) -> list:
    """A rectangle on the vertical plane X = x (a facade or a vehicle side), clipped to the camera's near range."""
    za, zb = max(z[0], cam.travelled + 0.8), z[1]
    return [cam.pt(x, y[0], za), cam.pt(x, y[1], za), cam.pt(x, y[1], zb), cam.pt(x, y[0], zb)]


def ground_quad(cam: Camera, x: tuple[float, float], z: tuple[float, float], y: float = 0.0) -> list:
    za, zb = max(z[0], cam.travelled + 1.5), z[1]
    return [cam.pt(x[0], y, za), cam.pt(x[1], y, za), cam.pt(x[1], y, zb), cam.pt(x[0], y, zb)]


@lru_cache(maxsize=4)
def sky_layer(width: int, height: int) -> np.ndarray:
    """Sky gradient, soft clouds and a hazy distant skyline: the parts too far away to move."""
    t = (np.arange(height, dtype=np.float32) / (0.5 * height)).clip(0, 1)[:, None, None]
    sky = (1 - t) * np.array(SKY_TOP, np.float32) + t * HAZE
    img = np.repeat(sky, width, axis=1)
    rng = np.random.default_rng(7)
    clouds = np.zeros((height, width), np.float32)
    for _ in range(14):
        cx, cy = rng.uniform(0, width), rng.uniform(0.02, 0.3) * height
        axes = (int(rng.uniform(0.05, 0.14) * width), int(rng.uniform(0.015, 0.04) * height))
        cv2.ellipse(clouds, (int(cx), int(cy)), axes, 0, 0, 360, float(rng.uniform(0.3, 0.6)), -1, cv2.LINE_AA)
    clouds = cv2.GaussianBlur(clouds, (0, 0), 0.02 * width)[..., None]
    img = img * (1 - clouds) + clouds * np.array((250, 248, 246), np.float32)
    draw_skyline(img, rng, width, height)
    return img.clip(0, 255).astype(np.uint8)


def draw_skyline(img: np.ndarray, rng: np.random.Generator, width: int, height: int) -> None:
    """Distant towers in haze, seen through the street canyon."""
    horizon = 0.45 * height
    x = 0.0
    while x < width:
        w = rng.uniform(0.03, 0.08) * width
        top = horizon - rng.uniform(0.03, 0.22) * height
        tone = rng.uniform(0.78, 0.92)
        fill(img, [(x, horizon + 2), (x, top), (x + w, top), (x + w, horizon + 2)], shade(SKY_HORIZON, tone))
        for row in np.arange(top + 0.012 * height, horizon, 0.014 * height):
            cv2.line(img, (int(x + 2), int(row)), (int(x + w - 2), int(row)), shade(SKY_HORIZON, tone * 0.93), 1)
        x += w * rng.uniform(0.7, 1.3)


BUILDINGS = (  # (side X, z start, z end, height, facade colour BGR)
    (6.2, -5.0, 9.0, 14.0, (120, 140, 170)),
    (6.2, 9.0, CROSS_Z[0], 22.0, (150, 160, 165)),
    (6.2, CROSS_Z[1], 50.0, 30.0, (110, 120, 150)),
    (6.2, 50.0, 80.0, 18.0, (170, 175, 180)),
    (6.2, 80.0, 140.0, 40.0, (140, 130, 120)),
    (-13.0, -5.0, 12.0, 18.0, (135, 150, 170)),
    (-13.0, 12.0, CROSS_Z[0], 12.0, (90, 100, 125)),
    (-13.0, CROSS_Z[1], 45.0, 26.0, (160, 165, 168)),
    (-13.0, 45.0, 90.0, 34.0, (125, 128, 135)),
    (-13.0, 90.0, 160.0, 22.0, (150, 150, 140)),
)


def draw_building(img: np.ndarray, cam: Camera, x: float, z: tuple[float, float], height: float, color: Color) -> None:
    """Facade along the street with a window grid, plus the face towards the camera where a gap shows it."""
    if cam.rel(z[1]) < 1.0:
        return
    side = 1 if x > 0 else -1
    front = quad_on_plane_x(cam, x, (0, height), (z[0], z[0]))
    front[2:] = [cam.pt(x + side * 15, height, z[0]), cam.pt(x + side * 15, 0, z[0])]
    if cam.rel(z[0]) > 1.0:
        fill(img, front, hazed(shade(color, 0.8), cam.rel(z[0])))
    near = hazed(color, cam.rel(max(z[0], cam.travelled)))
    fill_gradient(img, quad_on_plane_x(cam, x, (0, height), z), shade(near, 1.05), shade(near, 0.85))
    rng = np.random.default_rng(abs(int(z[0] * 10 + x * 1000)))
    for wy in np.arange(3.6, height - 1.0, 3.2):
        for wz in np.arange(z[0] + 0.8, z[1] - 1.6, 2.6):
            glass = hazed(shade((78, 68, 60), rng.uniform(0.75, 1.5)), cam.rel(wz))
            if cam.rel(wz) > 1.5:
                fill(img, quad_on_plane_x(cam, x, (wy, wy + 1.7), (wz, wz + 1.5)), glass)
    fill(img, quad_on_plane_x(cam, x, (0, 3.0), z), hazed((48, 46, 44), cam.rel(z[0])))


def draw_ground(img: np.ndarray, cam: Camera) -> None:
    """Asphalt, cross street, sidewalks with curbs, lane marks and the stop line, all fixed to the world."""
    far = 400.0
    fill_gradient(img, ground_quad(cam, ROAD_X, (0, far)), (128, 126, 124), (88, 88, 90))
    fill(img, ground_quad(cam, (-80, 80), CROSS_Z), (100, 100, 102))
    for xs in ((ROAD_X[1], 6.2), (-13.0, ROAD_X[0])):
        for zs in ((-5, CROSS_Z[0]), (CROSS_Z[1], far)):
            fill_gradient(img, ground_quad(cam, xs, zs, 0.15), (172, 174, 176), (150, 152, 155))
            curb_x = xs[0] if xs[0] == ROAD_X[1] else xs[1]
            fill(img, quad_on_plane_x(cam, curb_x, (0, 0.15), zs), (190, 192, 194))
    wear_asphalt(img, cam)
    draw_lane_marks(img, cam)


def wear_asphalt(img: np.ndarray, cam: Camera) -> None:
    """Oil-darkened lane centres and repair patches, fixed to the road so they pass under the car."""
    mask = np.zeros(img.shape[:2], np.uint8)
    for x in (-3.5, 0.0, -7.1):
        fill(mask, ground_quad(cam, (x - 0.45, x + 0.45), (0, 200)), (50,))
    rng = np.random.default_rng(3)
    for _ in range(30):
        x, z = rng.uniform(*ROAD_X), rng.uniform(0, 90)
        w, length = rng.uniform(0.4, 2.0), rng.uniform(0.5, 4.0)
        fill(mask, ground_quad(cam, (x, x + w), (z, z + length)), (int(rng.uniform(30, 90)),))
    y0 = int(cam.horizon)
    dark = 1.0 - 0.3 * mask[y0:, :, None].astype(np.float32) / 255.0
    img[y0:] = (img[y0:] * dark).astype(np.uint8)


def draw_lane_marks(img: np.ndarray, cam: Camera) -> None:
    white, yellow = (228, 230, 232), (40, 180, 215)
    start = math.floor(cam.travelled / 12) * 12
    for z in np.arange(start, 200, 12.0):
        if not (CROSS_Z[0] - 3 < z < CROSS_Z[1]):
            fill(img, ground_quad(cam, (-1.83, -1.67), (z, z + 3)), white)
    for x in (-5.45, -5.2):
        for zs in ((0, CROSS_Z[0] - 1.5), (CROSS_Z[1], 200)):
            fill(img, ground_quad(cam, (x - 0.06, x + 0.06), zs), yellow)
    fill(img, ground_quad(cam, (-1.75, ROAD_X[1]), (STOP_Z - 0.6, STOP_Z)), white)
    for x in np.arange(ROAD_X[0] + 0.5, ROAD_X[1] - 0.3, 1.2):
        fill(img, ground_quad(cam, (x, x + 0.6), (CROSS_Z[1] - 3.5, CROSS_Z[1] - 0.5)), white)


def draw_tree(img: np.ndarray, cam: Camera, x: float, z: float, seed: int) -> None:
    """Trunk and a canopy of overlapping blobs in several greens."""
    if cam.rel(z) < 2.0:
        return
    s = cam.scale(z)
    bx, by = cam.pt(x, 0, z)
    fill(img, [(bx - 0.12 * s, by), (bx - 0.08 * s, by - 3.2 * s), (bx + 0.08 * s, by - 3.2 * s), (bx + 0.12 * s, by)],
         hazed((40, 55, 70), cam.rel(z)))
    rng = np.random.default_rng(seed)
    for _ in range(45):
        ox, oy = rng.normal(0, 0.75), rng.uniform(3.2, 6.0)
        light = 0.75 + 0.1 * (oy - 3.2) - 0.08 * ox + rng.uniform(-0.1, 0.1)
        green = shade((int(rng.uniform(40, 60)), int(rng.uniform(95, 120)), int(rng.uniform(55, 80))), light)
        r = max(int(rng.uniform(0.35, 0.7) * s), 1)
        cv2.circle(img, (int(bx + ox * s), int(by - oy * s)), r, hazed(green, cam.rel(z)), -1, cv2.LINE_AA)


TREES = tuple((-10.5, z) for z in (4.0, 16.0, 40.0, 52.0, 64.0)) + tuple((4.2, z) for z in (40.0, 52.0, 64.0, 76.0))


@dataclass(frozen=True)
class RearFace:
    """A vehicle's rear plane: draws shapes given in metres (u right of centre, v up from the ground)."""

    x0: float
    y0: float
    s: float  # pixels per metre

    @classmethod
    def of(cls, cam: Camera, v: Vehicle, u: float) -> RearFace:
        return cls(*cam.pt(v.x, 0, v.z(u)), cam.scale(v.z(u)))

    def px(self, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(self.x0 + a * self.s, self.y0 - b * self.s) for a, b in pts]

    def fill(self, img: np.ndarray, pts: list[tuple[float, float]], color: Color) -> None:
        fill(img, self.px(pts), color)

    def gradient(self, img: np.ndarray, pts: list[tuple[float, float]], top: Color, bottom: Color) -> None:
        fill_gradient(img, self.px(pts), top, bottom)

    def shadow(self, img: np.ndarray, half_width: float) -> None:
        axes = (int(half_width * self.s), max(int(0.07 * self.s), 1))
        cv2.ellipse(img, (int(self.x0), int(self.y0)), axes, 0, 0, 360, (34, 34, 36), -1, cv2.LINE_AA)


def rect(a0: float, b0: float, a1: float, b1: float) -> list[tuple[float, float]]:
    return [(a0, b0), (a0, b1), (a1, b1), (a1, b0)]


def draw_car(img: np.ndarray, cam: Camera, v: Vehicle, u: float) -> None:
    """A saloon from behind: shadow, tyres, bumper, shaded body and glass, then lamps and number plate."""
    face, color = RearFace.of(cam, v, u), hazed(v.color, cam.rel(v.z(u)))
    face.shadow(img, 1.05)
    for side in (-1, 1):
        face.fill(img, rect(side * 0.62, 0, side * 0.88, 0.4), (24, 24, 26))
    face.fill(img, [(-0.9, 0.22), (0.9, 0.22), (0.92, 0.5), (-0.92, 0.5)], (40, 40, 42))
    body = [(-0.92, 0.45), (-0.93, 0.86), (-0.86, 1.0), (0.86, 1.0), (0.93, 0.86), (0.92, 0.45)]
    face.gradient(img, body, shade(color, 1.12), shade(color, 0.72))
    cabin = [(-0.8, 0.98), (-0.62, 1.42), (0.62, 1.42), (0.8, 0.98)]
    face.gradient(img, cabin, shade(color, 1.05), shade(color, 0.9))
    face.gradient(img, [(-0.71, 1.02), (-0.57, 1.36), (0.57, 1.36), (0.71, 1.02)], (150, 140, 132), (42, 38, 36))
    for side in (-1, 1):
        mirror = [(side * 0.92, 1.0), (side * 1.02, 1.02), (side * 1.02, 1.1), (side * 0.86, 1.1)]
        face.fill(img, mirror, shade(color, 0.6))
    draw_car_rear_details(img, face, color)


def draw_car_rear_details(img: np.ndarray, face: RearFace, color: Color) -> None:
    """Lit brake lamps (the car is braking), boot lid line and number plate."""
    for side in (-1, 1):
        face.fill(img, [(side * 0.96, 0.66), (side * 0.96, 0.94), (side * 0.56, 0.94), (side * 0.58, 0.7)],
                  (70, 70, 200))
        lamp = [(side * 0.93, 0.7), (side * 0.93, 0.9), (side * 0.6, 0.9), (side * 0.62, 0.74)]
        face.gradient(img, lamp, (90, 90, 255), (30, 30, 200))
    face.fill(img, rect(-0.12, 1.37, 0.12, 1.4), (60, 60, 240))
    face.fill(img, rect(-0.5, 0.615, 0.5, 0.63), shade(color, 0.65))
    face.fill(img, rect(-0.26, 0.5, 0.26, 0.62), (215, 218, 220))
    x, y = face.px([(-0.22, 0.52)])[0]
    cv2.putText(img, "KD 4127", (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, 0.0042 * face.s, (40, 40, 40),
                max(1, int(0.012 * face.s)), cv2.LINE_AA)


def draw_truck(img: np.ndarray, cam: Camera, v: Vehicle, u: float) -> None:
    """A box truck from behind and a little from the side: cargo box, dual wheels, under-ride guard."""
    z = v.z(u)
    face, color = RearFace.of(cam, v, u), hazed(v.color, cam.rel(z))
    face.shadow(img, 1.3)
    side_x = v.x + 1.22
    fill(img, quad_on_plane_x(cam, side_x, (0.3, 0.95), (z, z + 7.0)), (35, 35, 38))
    fill_gradient(img, quad_on_plane_x(cam, side_x, (0.95, 3.5), (z, z + 7.0)), shade(color, 0.82),
                  shade(color, 0.62))
    for side in (-1, 1):
        face.fill(img, rect(side * 0.55, 0, side * 1.15, 0.95), (22, 22, 24))
    face.fill(img, rect(-1.05, 0.42, 1.05, 0.56), (30, 30, 32))
    face.gradient(img, rect(-1.23, 0.95, 1.23, 3.5), shade(color, 1.06), shade(color, 0.8))
    face.fill(img, rect(-1.23, 0.95, 1.23, 1.12), shade(color, 0.55))
    draw_truck_doors(img, face, color)


def draw_truck_doors(img: np.ndarray, face: RearFace, color: Color) -> None:
    """Door seams and lock bars, conspicuity tape, tail and marker lamps."""
    for a in (-1.18, -0.02, 0.02, 1.18):
        face.fill(img, rect(a - 0.01, 1.12, a + 0.01, 3.45), shade(color, 0.6))
    for a in (-0.75, -0.3, 0.3, 0.75):
        face.fill(img, rect(a - 0.025, 1.2, a + 0.025, 3.35), (120, 122, 125))
    for i, a in enumerate(np.arange(-1.2, 1.2, 0.2)):
        face.fill(img, rect(a, 0.96, a + 0.2, 1.04), (50, 50, 210) if i % 2 else (235, 235, 235))
    for side in (-1, 1):
        face.fill(img, rect(side * 0.95, 0.66, side * 1.2, 0.82), (50, 50, 235))
        face.fill(img, rect(side * 0.7, 0.66, side * 0.93, 0.82), (40, 150, 240))
        face.fill(img, rect(side * 0.15, 3.4, side * 0.3, 3.46), (40, 150, 240))


def draw_stop_sign(img: np.ndarray, cam: Camera) -> None:
    """Red octagon with white rim and lettering on a grey post, as on a real kerb."""
    s = cam.scale(STOP_Z)
    cx, cy = cam.pt(SIGN_X, SIGN_Y, STOP_Z)
    bx, by = cam.pt(SIGN_X, 0, STOP_Z)
    fill_gradient(img, [(bx - 0.035 * s, by), (bx - 0.035 * s, cy), (bx + 0.035 * s, cy), (bx + 0.035 * s, by)],
                  (170, 170, 172), (110, 110, 112))
    fill(img, octagon(cx, cy, SIGN_WIDTH / 2 * s), (236, 238, 240))
    fill_gradient(img, octagon(cx, cy, (SIGN_WIDTH / 2 - 0.035) * s), (48, 38, 212), (30, 22, 168))
    draw_centered_text(img, "STOP", (cx, cy), 0.62 * SIGN_WIDTH * s, (245, 245, 245))


def octagon(cx: float, cy: float, apothem: float) -> list[tuple[float, float]]:
    r = apothem / math.cos(math.pi / 8)
    return [(cx + r * math.cos(math.pi / 8 + k * math.pi / 4), cy + r * math.sin(math.pi / 8 + k * math.pi / 4))
            for k in range(8)]


def draw_centered_text(img: np.ndarray, text: str, centre: tuple[float, float], width: float, color: Color) -> None:
    """Bold text scaled to ``width`` pixels, centred on ``centre``."""
    font = cv2.FONT_HERSHEY_DUPLEX
    (tw, _), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = width / tw
    thickness = max(1, int(round(scale * 2.6)))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (int(centre[0] - tw / 2), int(centre[1] + th / 2))
    cv2.putText(img, text, org, font, scale, color, thickness, cv2.LINE_AA)


LIGHT_BOX = (-0.2, 4.3, 0.2, 5.4)  # housing: x0, y0, x1, y1 in metres, hanging from the mast arm over the lane


def draw_traffic_light(img: np.ndarray, cam: Camera) -> None:
    """Mast-arm signal beyond the intersection showing red."""
    s, rel = cam.scale(LIGHT_Z), cam.rel(LIGHT_Z)
    metal = hazed((70, 72, 74), rel)
    fill(img, signal_rect(cam, (5.05, 5.25), (0, 6.2)), metal)
    fill(img, signal_rect(cam, (-0.6, 5.2), (5.75, 5.9)), metal)
    fill(img, signal_rect(cam, (-0.03, 0.03), (5.4, 5.8)), metal)
    fill(img, signal_rect(cam, (-0.34, 0.34), (4.15, 5.55)), hazed((28, 30, 32), rel))
    fill(img, signal_rect(cam, LIGHT_BOX[0::2], LIGHT_BOX[1::2]), hazed((30, 120, 150), rel))
    fill(img, signal_rect(cam, (-0.16, 0.16), (4.34, 5.36)), (22, 24, 26))
    for y, lamp in ((5.1, (70, 60, 255)), (4.85, (25, 55, 80)), (4.6, (45, 70, 35))):
        x, yy = cam.pt(0.0, y, LIGHT_Z)
        cv2.circle(img, (int(x), int(yy)), max(1, int(0.11 * s)), lamp, -1, cv2.LINE_AA)


def signal_rect(cam: Camera, xs: tuple[float, float], ys: tuple[float, float]) -> list:
    """A rectangle on the plane Z = LIGHT_Z (signal pole, arm and housing)."""
    return [cam.pt(xs[0], ys[0], LIGHT_Z), cam.pt(xs[0], ys[1], LIGHT_Z), cam.pt(xs[1], ys[1], LIGHT_Z),
            cam.pt(xs[1], ys[0], LIGHT_Z)]


def add_light_glow(img: np.ndarray, cam: Camera, u: float) -> None:
    """Bloom around lit lamps (brake lights and the red signal), as a camera sensor shows them."""
    glow = np.zeros(img.shape[:2], np.float32)
    for v in VEHICLES:
        if v.kind == "car" and cam.rel(v.z(u)) > 2:
            face = RearFace.of(cam, v, u)
            for x, y in face.px([(-0.77, 0.82), (0.77, 0.82)]):
                cv2.circle(glow, (int(x), int(y)), max(1, int(0.16 * face.s)), 0.5, -1)
    x, y = cam.pt(0.0, 5.1, LIGHT_Z)
    cv2.circle(glow, (int(x), int(y)), max(1, int(0.16 * cam.scale(LIGHT_Z))), 0.8, -1)
    glow = cv2.GaussianBlur(glow, (0, 0), img.shape[1] / 250)[..., None]
    img[:] = (img + glow * np.array((20, 30, 160), np.float32)).clip(0, 255).astype(np.uint8)


def draw_scene(img: np.ndarray, cam: Camera, u: float) -> None:
    """Painter's order: ground, buildings, then every upright object from far to near."""
    draw_ground(img, cam)
    for x, z0, z1, height, color in sorted(BUILDINGS, key=lambda b: -b[2]):
        draw_building(img, cam, x, (z0, z1), height, color)
    items = [(z, lambda x=x, z=z, i=i: draw_tree(img, cam, x, z, i)) for i, (x, z) in enumerate(TREES)]
    items.append((LIGHT_Z, lambda: draw_traffic_light(img, cam)))
    items.append((STOP_Z, lambda: draw_stop_sign(img, cam)))
    for v in VEHICLES:
        draw = draw_truck if v.kind == "truck" else draw_car
        items.append((v.z(u), lambda v=v, draw=draw: draw(img, cam, v, u)))
    for _, draw in sorted(items, key=lambda item: -item[0]):
        draw()
    add_light_glow(img, cam, u)


@lru_cache(maxsize=4)
def vignette(width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xs - width / 2) / width) ** 2 + ((ys - height / 2) / height) ** 2
    return (1.0 - 0.35 * r2)[..., None]


def render_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame ``index`` of the clip as BGR uint8; the same index always gives the same pixels."""
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    img = sky_layer(big_w, big_h).copy()
    draw_scene(img, camera(index, big_w, big_h), progress(index))
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    noise = np.random.default_rng(index).normal(0.0, 2.2, (height, width, 1)).astype(np.float32)
    img = img * vignette(width, height) + noise
    return cv2.GaussianBlur(img.clip(0, 255).astype(np.uint8), (3, 3), 0.5)


def sample_tracks(index: int, width: int = WIDTH, height: int = HEIGHT) -> list[tuple[int, str, Box]]:
    """(object id, driving class name, xyxy pixels) of the drawn objects mostly inside frame ``index``; an
    object keeps its id in every frame (ground truth for tracking)."""
    cam, u = camera(index, width, height), progress(index)
    boxes: list[tuple[str, Box]] = []
    for v in VEHICLES:
        boxes.append((v.kind, vehicle_box(cam, v, u)))
    apothem = SIGN_WIDTH / 2 * cam.scale(STOP_Z)
    boxes.append(("stop_sign", bounds(octagon(*cam.pt(SIGN_X, SIGN_Y, STOP_Z), apothem))))
    boxes.append(("traffic_light", bounds(signal_rect(cam, LIGHT_BOX[0::2], LIGHT_BOX[1::2]))))
    return [(i, name, clipped) for i, (name, box) in enumerate(boxes) if (clipped := visible_part(box, width, height))]


def sample_ground_truth(index: int, width: int = WIDTH, height: int = HEIGHT) -> list[tuple[str, Box]]:
    """Boxes (driving class name, xyxy pixels) of the drawn objects that are mostly inside frame ``index``."""
    return [(name, box) for _, name, box in sample_tracks(index, width, height)]


def vehicle_box(cam: Camera, v: Vehicle, u: float) -> Box:
    z = v.z(u)
    if v.kind == "truck":
        corners = [cam.pt(v.x + dx, y, zz) for dx in (-1.23, 1.23) for y in (0, 3.5) for zz in (z, z + 7.0)]
        return bounds(corners)
    return bounds([cam.pt(v.x - 1.02, 0, z), cam.pt(v.x + 1.02, 1.42, z)])


def bounds(pts: list[tuple[float, float]]) -> Box:
    arr = np.array(pts)
    return (*arr.min(0), *arr.max(0))


def visible_part(box: Box, width: int, height: int) -> Box | None:
    """The box clipped to the frame, or None when most of it is outside or it is too small to detect."""
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    area = (x2 - x1) * (y2 - y1)
    if cx2 - cx1 < 6 or cy2 - cy1 < 6 or (cx2 - cx1) * (cy2 - cy1) < 0.6 * area:
        return None
    return tuple(round(float(v), 1) for v in (cx1, cy1, cx2, cy2))


def write_sample(path: str | Path = DEFAULT_OUT, frames: int = FRAMES, fps: float = FPS) -> Path:
    """Encode the clip's first ``frames`` frames with mp4v; fails loudly when OpenCV has no writer for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {path}")
    try:
        for index in range(frames):
            writer.write(render_frame(index))
    finally:
        writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .mp4 (default: %(default)s)")
    args = parser.parse_args()
    path = write_sample(args.out)
    print(f"wrote {path} ({FRAMES} frames, {WIDTH}x{HEIGHT} @ {FPS:g} fps, {path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
