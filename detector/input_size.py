"""The input-size policy of the bundled model: the short side grows with the frame's, to the power 0.75.

A fixed 320 x 640 range shrinks a 3.3:1 frame to 640 x 193 (cars half the size the model learned) and a
1360 x 800 dashcam frame by 0.4 (signs of 6-50 px). Scaling the short side as ``320 * (short / 360) ** 0.75``
keeps 640 x 360 footage exactly as before (the speed of the default is unchanged there) while HD frames keep
more of their detail: objects in higher-resolution footage are larger in pixels, so they are shrunk less than the
frame. No frame goes below a 320 short side; the long side is capped at ``MAX_LONG``. The exponent was 0.5 until
2026-12-02; AP against input size on the GTSDB hold-out (docs/benchmarks.md) rose up to the largest size measured,
560, for small signs while cars on 640 x 360 footage stayed flat beyond 320, so HD frames now get about 580.

    640 x 360 -> 568 x 320    1242 x 375 -> 1092 x 329    1360 x 800 -> 990 x 582
    500 x 375 -> 439 x 329    1920 x 1080 -> 1296 x 729   300 x 400 (portrait) -> 320 x 426

`PolicyTransform` does this inside the model for training and eager use (training keeps torchvision's random short
sides, ``train_min_sizes``). The backends resize on the host instead (`detector.preprocess.fit_frame`: uint8, about
1 ms for a 1080p frame against 30 ms of float resize, transpose and scaling of the full frame inside the graph) and
run the model behind a `PresizedTransform`, so every backend and the exported graph see the same pixels.

On HD frames the pipeline runs most detector frames at the policy's floor instead (`base_size`, where
`coarse_size` says it pays: ``model.full_size_every``): cars and people need no more than a 320 short side.
"""
from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, _fake_cast_onnx, _get_shape_onnx

BASE_SHORT = 320.0
REFERENCE_SHORT = 360.0
SHORT_EXPONENT = 0.75
MAX_LONG = 1600.0
POLICY_NAME = "pow0.75"  # the exported graph's ``size_policy`` metadata
COARSE_MIN_PIXELS = 1.5  # `coarse_size`: the policy's size must have this many times the base size's pixels
# Boxes with a short side below this at the base size are too small for a base-size pass to find again: the far
# cars of 8-10 px there (20-40 px in a 720p frame) that the policy's size finds on the one real HD clip here
BASE_MIN_BOX = 16


def policy_scale(height: float, width: float) -> float:
    """The resize factor the policy gives an image of ``height`` x ``width`` pixels."""
    short, long = min(height, width), max(height, width)
    target = max(BASE_SHORT, BASE_SHORT * (short / REFERENCE_SHORT) ** SHORT_EXPONENT)
    return min(target / short, MAX_LONG / long)


def policy_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the model sees for a frame of ``width`` x ``height`` (as torch's interpolate rounds)."""
    return scaled_size(width, height, policy_scale(height, width))


def base_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) at the policy's floor: short side `BASE_SHORT`, long side at most `MAX_LONG`.

    What an HD frame is shrunk to on a detector frame that skips the full size (``model.full_size_every``):
    vehicles and people are found there as well as at the policy's size; small signs and lights are not. The policy
    maps this size to itself, so a frame shrunk to it passes a backend unchanged."""
    return scaled_size(width, height, min(BASE_SHORT / min(width, height), MAX_LONG / max(width, height)))


def coarse_size(width: int, height: int) -> tuple[int, int] | None:
    """`base_size` where the policy's size has at least `COARSE_MIN_PIXELS` times its pixels (frames above about
    470 px short side: 720p, 1080p, HD dashcam frames), else None: below that a base-size pass saves little."""
    base = base_size(width, height)
    full = policy_size(width, height)
    return base if full[0] * full[1] >= COARSE_MIN_PIXELS * base[0] * base[1] else None


def fixed_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(width, height) torchvision's fixed rule gives: short side ``min_size`` unless the long one passes
    ``max_size``."""
    return scaled_size(width, height, min(min_size / min(width, height), max_size / max(width, height)))


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """As torch's interpolate rounds, and never below one pixel (a 1-pixel-high frame stays a frame)."""
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


class PolicyTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform with the policy's resize at test time (normalisation and batching
    unchanged)."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict | None]:
        if self.training:
            return super().resize(image, target)
        if torchvision._is_tracing():
            shape = _get_shape_onnx(image).to(torch.float32)
            short, long = torch.min(shape), torch.max(shape)
            grown = BASE_SHORT * torch.pow(short / REFERENCE_SHORT, SHORT_EXPONENT)
            target_short = torch.clamp(grown, min=BASE_SHORT)
            scale = _fake_cast_onnx(torch.min(target_short / short, MAX_LONG / long))
        else:
            scale = policy_scale(*image.shape[-2:])
        resized = torch.nn.functional.interpolate(image[None], scale_factor=scale, mode="bilinear",
                                                  recompute_scale_factor=True, align_corners=False)[0]
        return resized, target


class PresizedTransform(GeneralizedRCNNTransform):
    """The transform of a model whose caller resizes each frame to `input_size` (the backends, through
    `detector.preprocess.fit_frame`): at test time it only normalises and pads, so boxes come out in the pixels
    of the image it was given. Training resizes as torchvision does, as `PolicyTransform` also does.

    ``policy``: the input-size policy sizes frames, else torchvision's fixed short/long-side rule.
    """

    def __init__(self, transform: GeneralizedRCNNTransform):
        super().__init__(transform.min_size, transform.max_size, transform.image_mean, transform.image_std,
                         transform.size_divisible, transform.fixed_size)
        self.policy = isinstance(transform, PolicyTransform)

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) a ``width`` x ``height`` frame is resized to before the model."""
        if self.policy:
            return policy_size(width, height)
        return fixed_size(width, height, self.min_size[-1], self.max_size)

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict | None]:
        if self.training:
            return super().resize(image, target)
        return image, target


def presized(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (changed in place) with its transform's test-time resize left to the caller (`PresizedTransform`);
    a model without torchvision's detection transform takes frames at their own size."""
    if isinstance(getattr(model, "transform", None), GeneralizedRCNNTransform) and \
            not isinstance(model.transform, PresizedTransform):
        model.transform = PresizedTransform(model.transform)
    return model
