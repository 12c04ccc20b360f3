"""What a model costs a frame in floating-point operations, per part, counted by torch's FLOP counter.

FLOPs say how much work an architecture asks for at an input size, independent of the CPU; frames per second
(`driving-detect benchmark`) say what a machine makes of it. Both are needed to compare models honestly: a
depthwise convolution is cheap in FLOPs and slow per FLOP.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

PARTS = ("backbone", "rpn", "roi_heads")


def frame_gflops(model: nn.Module, width: int, height: int) -> dict[str, float]:
    """GFLOPs of one ``width`` x ``height`` frame through ``model`` (a torchvision Faster R-CNN, in eval mode), as
    ``backbone`` (with the FPN), ``rpn``, ``roi_heads`` and ``total``; the model resizes the frame by its own
    transform first, so this is the cost at the input size it actually runs at.

    Random pixels: the RPN keeps top-N proposals whatever the image, so the count does not depend on content.
    """
    generator = torch.Generator().manual_seed(0)
    frame = torch.rand(3, height, width, generator=generator)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()([frame])
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    parts = {part: sum(per_module.get(f"{root}.{part}", {}).values()) / 1e9 for part in PARTS}
    return {**parts, "total": counter.get_total_flops() / 1e9}
