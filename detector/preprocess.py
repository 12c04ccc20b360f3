"""The one preprocessing of every model input: a camera frame (uint8 BGR, HWC) -> the size the model sees
(`fit_frame`, on the host) -> float RGB, CHW, in [0, 1] (`to_model_input`).

The backends run `fit_frame` before the model, the exporter traces `to_model_input` into the ONNX graph, the torch
backend runs it on its device and the trainer applies it to every training image, so all of them see the same
pixels. Normalisation and padding are the model's own transform.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

InputSize = Callable[[int, int], tuple[int, int]]  # (width, height) of a frame -> (width, height) the model sees


def fit_frame(frame_bgr: np.ndarray, input_size: InputSize) -> tuple[np.ndarray, np.ndarray]:
    """The frame at the size the model sees, and the (4,) factors that map xyxy boxes on it back to the frame.

    Bilinear with half-pixel centres and no antialiasing, as torch's ``interpolate`` in the model's transform (the
    path training and eager use take): a uint8 resize here is about 1 ms for a 1080p frame, where the graph spent
    about 30 on the float resize, transpose and scaling of the whole frame (docs/benchmarks.md, "Real time at HD").
    """
    height, width = frame_bgr.shape[:2]
    size = input_size(width, height)
    if size == (width, height):
        return frame_bgr, np.ones(4, np.float32)
    back = np.array([width / size[0], height / size[1]] * 2, np.float32)
    return cv2.resize(frame_bgr, size, interpolation=cv2.INTER_LINEAR), back


def to_model_input(frame_bgr: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (3, H, W) ``dtype`` RGB in [0, 1], on the tensor's device.

    The channels are reversed after the permute, as whole planes: reversing the interleaved HWC axis exported as
    a per-pixel Slice that OpenVINO ran with a reference kernel, 4-5 ms a 640x360 frame on one thread.
    """
    return frame_bgr.permute(2, 0, 1).flip(0).to(dtype).div(255)
