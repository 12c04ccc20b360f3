"""PyTorch eager inference backend: BGR frame in, `Detections` (driving ids, source pixels) out."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from detector.config import ConfigError
from detector.detections import Detections


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("'model.device' = 'cuda' but no CUDA device is available; use auto or cpu")
    return torch.device(device)


class TorchBackend:
    """Runs a torchvision detection model; preprocessing (BGR->RGB, scaling to [0, 1]) runs on the device."""

    name = "torch"

    def __init__(self, model: nn.Module, class_map: np.ndarray, device: torch.device, fp16: bool = False):
        self.device = device
        self.fp16 = fp16 and device.type == "cuda"
        self.model = model.to(device).eval()
        if self.fp16:
            self.model.half()
        self.class_map = class_map

    def preprocess(self, frame_bgr: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 BGR -> (3, H, W) float RGB in [0, 1] on the device."""
        tensor = torch.from_numpy(np.ascontiguousarray(frame_bgr)).to(self.device, non_blocking=True)
        tensor = tensor.flip(-1).permute(2, 0, 1)
        return tensor.half().div_(255) if self.fp16 else tensor.float().div_(255)

    @torch.inference_mode()
    def __call__(self, frame_bgr: np.ndarray) -> Detections:
        output = self.model([self.preprocess(frame_bgr)])[0]
        labels = self.class_map[output["labels"].cpu().numpy()]
        keep = labels >= 0
        return Detections(
            output["boxes"].float().cpu().numpy()[keep], output["scores"].float().cpu().numpy()[keep], labels[keep]
        )
