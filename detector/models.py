"""Faster R-CNN builders by name: torchvision's four, and the project's two bundled driving models.

Every builder takes the RPN top-N (kept proposals at test time, pre- and post-NMS), the input size range and
the score threshold, and sets the model's own box NMS to IoU 1.0: that NMS then suppresses nothing, so the
explicit class-wise NMS stage (`detector.nms`) is the one that decides.
"""
from __future__ import annotations


from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import detection, mobilenet_v2
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, RPNHead, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from detector.config import (BUNDLED_MODEL, DEFAULT_SCORE_THRESH, DEFAULT_TOP_N, DRIVING_MODELS, LITE_MODEL, MODEL_NAMES,
                             TORCHVISION_MODELS)
from detector.input_size import PolicyTransform, fixed_size, policy_size

TORCHVISION_BUILDERS: dict[str, Callable[..., FasterRCNN]] = {name: getattr(detection, name)
                                                              for name in TORCHVISION_MODELS}

# torchvision's own input sizes per model, used when the config leaves min/max size at 0.
DEFAULT_SIZES: dict[str, tuple[int, int]] = {
    BUNDLED_MODEL: (320, 640),
    LITE_MODEL: (320, 640),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (320, 640),
    "fasterrcnn_mobilenet_v3_large_fpn": (800, 1333),
    "fasterrcnn_resnet50_fpn": (800, 1333),
    "fasterrcnn_resnet50_fpn_v2": (800, 1333),
}


def detection_kwargs(top_n: int, min_size: int | tuple[int, ...], max_size: int, score_thresh: float) -> dict:
    """FasterRCNN keyword arguments shared by every builder (see the module docstring for the NMS choice)."""
    return dict(
        min_size=min_size,
        max_size=max_size,
        rpn_pre_nms_top_n_test=top_n,
        rpn_post_nms_top_n_test=top_n,
        box_score_thresh=score_thresh,
        box_nms_thresh=1.0,
        box_detections_per_img=300,
    )


def mobilenet_v2_fpn_backbone(imagenet_weights: Path | None = None, frozen_stages: int = 4) -> BackboneWithFPN:
    """MobileNetV2 features with a 128-channel FPN on strides 8, 16 and 32 (plus a max-pooled stride 64).

    BatchNorm is frozen (detection batches are too small to estimate it); ``features[:frozen_stages]`` don't train.
    """
    features = mobilenet_v2(norm_layer=FrozenBatchNorm2d).features
    if imagenet_weights is not None:
        state = torch.load(imagenet_weights, map_location="cpu", weights_only=True)
        target = features.state_dict()
        values = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
        if len(values) != len(target) or any(v.shape != t.shape for v, t in zip(values, target.values())):
            raise ValueError(f"'{imagenet_weights}' does not match torchvision's mobilenet_v2().features")
        features.load_state_dict(dict(zip(target.keys(), values)))
    for layer in features[:frozen_stages]:
        layer.requires_grad_(False)
    return BackboneWithFPN(
        features,
        return_layers={"6": "0", "13": "1", "17": "2"},
        in_channels_list=[32, 96, 320],
        out_channels=128,
    )


def build_driving_mobilenet_v2_fpn(
    num_classes: int,
    imagenet_weights: Path | None = None,
    frozen_stages: int = 4,
    **kwargs,
) -> FasterRCNN:
    """The bundled driving detector: small anchors on stride 8 for distant cars and signs, a 512-wide box head."""
    backbone = mobilenet_v2_fpn_backbone(imagenet_weights, frozen_stages)
    anchors = driving_anchors()
    roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, 512),
        box_predictor=FastRCNNPredictor(512, num_classes),
        **kwargs,
    )


LITE_FPN_RANK = 3  # depthwise filters per input channel in the light FPN's output convolutions
LITE_RPN_RANK = 2  # ... and in the light RPN's convolution
LITE_RPN_CHANNELS = 80  # the light RPN convolution's output channels (the bundled model's: 128)
LITE_THIN_CHANNELS = 56  # channels of the light model's thin feature maps
LITE_POOL = 5  # their RoIAlign size: 56 x 5 x 5 keeps more of the teacher's box head than 32 x 7 x 7, same FLOPs
LITE_HIDDEN = 384  # the light box head's first FC width
BACKBONE_LAYERS = 18  # mobilenet_v2().features[:18] feed the FPN (layer 18, the 1280-channel conv, is dropped)


def separable_conv(channels: int, out_channels: int, rank: int = 1) -> nn.Sequential:
    """``rank`` 3x3 depthwise filters per input channel, then a 1x1 pointwise convolution: a dense 3x3's job at
    about ``rank``/9 of its multiply-adds (rank 9 can equal any dense 3x3)."""
    return nn.Sequential(nn.Conv2d(channels, channels * rank, 3, padding=1, groups=channels, bias=False),
                         nn.Conv2d(channels * rank, out_channels, 1))


class ThinRoIAlign(MultiScaleRoIAlign):
    """Light-Head R-CNN's thin feature maps: a 1x1 convolution thins each FPN level to ``thin`` channels before
    RoIAlign pools them, so the box head reads ``thin x output_size x output_size`` per RoI. RoIAlign is linear and
    the convolution has no bias, so this equals thinning every pooled RoI, once per frame instead of once per RoI.

    Args:
        channels: C of the FPN levels (N, C, H, W) named in ``featmap_names``.
        thin: channels of the pooled output (K, thin, output_size, output_size).
    """

    def __init__(self, channels: int, thin: int, featmap_names: list[str], output_size: int = 7):
        super().__init__(featmap_names=featmap_names, output_size=output_size, sampling_ratio=2)
        self.thin = nn.Conv2d(channels, thin, 1, bias=False)

    def forward(self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        return super().forward({name: self.thin(x[name]) for name in self.featmap_names}, boxes, image_shapes)


class NarrowMLPHead(nn.Module):
    """torchvision's TwoMLPHead with a narrower first layer: ``in_features`` -> ``hidden`` -> ``representation``.

    Args:
        in_features: size of each flattened RoI feature (K, in_features).
        hidden: width of the first FC layer.
        representation: width of the output (K, representation) the box predictor reads.
    """

    def __init__(self, in_features: int, hidden: int, representation: int):
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, representation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu(self.fc7(nn.functional.relu(self.fc6(x.flatten(1)))))


def build_driving_mobilenet_v2_lite(num_classes: int, frozen_stages: int = BACKBONE_LAYERS, **kwargs) -> FasterRCNN:
    """The light driving detector: the bundled model's two stages, backbone, anchors and pooling at half its FLOPs.

    The MobileNetV2 body is the bundled model's, layer for layer (and frozen by default: it is already trained for
    driving, and a halved one cost 4-22 points that distillation did not win back); the saving is in the layers
    after it: depthwise-separable FPN outputs (rank `LITE_FPN_RANK`) and a narrower separable RPN convolution
    (`lite_rpn_head`), `ThinRoIAlign` and a narrower first FC layer. Trained by distillation from the bundled model
    (`training.distill`), which also initialises every layer from it.
    """
    backbone = mobilenet_v2_fpn_backbone(None, frozen_stages)
    for i in range(len(backbone.fpn.layer_blocks)):
        backbone.fpn.layer_blocks[i] = separable_conv(128, 128, LITE_FPN_RANK)
    anchors = driving_anchors()
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=lite_rpn_head(128, anchors.num_anchors_per_location()[0]),
        box_roi_pool=ThinRoIAlign(128, LITE_THIN_CHANNELS, ["0", "1", "2"], LITE_POOL),
        box_head=NarrowMLPHead(LITE_THIN_CHANNELS * LITE_POOL ** 2, LITE_HIDDEN, 512),
        box_predictor=FastRCNNPredictor(512, num_classes),
        **kwargs,
    )


def lite_rpn_head(channels: int, num_anchors: int) -> RPNHead:
    """torchvision's RPN head with its 3x3 convolution separable (rank `LITE_RPN_RANK`) and `LITE_RPN_CHANNELS`
    wide, the objectness and box layers reading those channels."""
    head = RPNHead(channels, num_anchors)
    head.conv = nn.Sequential(separable_conv(channels, LITE_RPN_CHANNELS, LITE_RPN_RANK), nn.ReLU(inplace=True))
    head.cls_logits = nn.Conv2d(LITE_RPN_CHANNELS, num_anchors, 1)
    head.bbox_pred = nn.Conv2d(LITE_RPN_CHANNELS, num_anchors * 4, 1)
    return head


def driving_anchors() -> AnchorGenerator:
    """Both driving models' anchors: small ones on stride 8 for distant cars and signs."""
    return AnchorGenerator(sizes=((16, 24), (32, 48), (64, 96), (128, 256)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)


def build_detector(
    name: str,
    num_classes: int,
    top_n: int = DEFAULT_TOP_N,
    min_size: int | tuple[int, ...] = 0,
    max_size: int = 0,
    score_thresh: float = DEFAULT_SCORE_THRESH,
    **train_kwargs,
) -> nn.Module:
    """An untrained Faster R-CNN ``name`` with ``num_classes`` outputs (weights are loaded by `detector.weights`).

    The bundled model with ``min_size`` 0 resizes by the input-size policy (`detector.input_size`); an explicit
    ``min_size`` (and torchvision's models always) use torchvision's fixed short/long-side range.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model '{name}'; valid models: {', '.join(MODEL_NAMES)}")
    default_min, default_max = DEFAULT_SIZES[name]
    kwargs = detection_kwargs(top_n, min_size or default_min, max_size or default_max, score_thresh)
    kwargs.update(train_kwargs)
    if name not in DRIVING_MODELS:
        return TORCHVISION_BUILDERS[name](weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    builder = build_driving_mobilenet_v2_fpn if name == BUNDLED_MODEL else build_driving_mobilenet_v2_lite
    model = builder(num_classes, **kwargs)
    if uses_size_policy(name, min_size):
        t = model.transform
        model.transform = PolicyTransform(t.min_size, t.max_size, t.image_mean, t.image_std, t.size_divisible)
    return model


def uses_size_policy(name: str, min_size: int | tuple[int, ...]) -> bool:
    """Whether ``name`` built with ``min_size`` resizes by the input-size policy (a driving model, no size set)."""
    return name in DRIVING_MODELS and not min_size


def model_input_size(name: str, min_size: int, max_size: int, width: int, height: int) -> tuple[int, int]:
    """(width, height) the model ``name`` built with ``min_size``/``max_size`` resizes a ``width`` x ``height``
    frame to (before padding to its stride): the policy's size, or torchvision's fixed short/long-side rule."""
    if uses_size_policy(name, min_size):
        return policy_size(width, height)
    default_min, default_max = DEFAULT_SIZES[name]
    return fixed_size(width, height, min_size or default_min, max_size or default_max)


def set_top_n(model: FasterRCNN, top_n: int) -> None:
    """Change the test-time RPN top-N of a built model in place (the tuner sweeps it without rebuilding)."""
    model.rpn._pre_nms_top_n["testing"] = top_n
    model.rpn._post_nms_top_n["testing"] = top_n
