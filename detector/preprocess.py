"""The one preprocessing step of every model input: a camera frame (uint8 BGR, HWC) -> float RGB, CHW, in [0, 1].

The torch backend runs it on its device, the exporter traces it into the ONNX graph and the trainer applies it to
every training image, so all three see the same pixels. Resizing and normalisation are the model's own transform.
"""
from __future__ import annotations

import torch


def to_model_input(frame_bgr: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (3, H, W) ``dtype`` RGB in [0, 1], on the tensor's device.

    The channels are reversed after the permute, as whole planes: reversing the interleaved HWC axis exported as
    a per-pixel Slice that OpenVINO ran with a reference kernel, 4-5 ms a 640x360 frame on one thread.
    """
    return frame_bgr.permute(2, 0, 1).flip(0).to(dtype).div(255)
