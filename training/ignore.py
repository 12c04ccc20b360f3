"""Ignore regions in training: anchors and proposals that lie mostly inside one are neither positive nor negative.

Our labels miss objects (the teacher finds about half of all people), and some regions are marked "don't care" on
purpose (COCO ``iscrowd``, VOC ``difficult``, KITTI DontCare, low-score teacher boxes with ``ignore_below_score``).
Taught as background, a missed person trains the model to miss people. Each training target may carry ``ignore``
(M, 4) xyxy regions; torchvision's own matching runs unchanged, and afterwards every anchor or proposal it called
background that lies inside a region gets the label its samplers skip, the label its `Matcher` gives a match
between the thresholds. A positive stays positive: a labelled box inside a region (a high-score teacher box under
a low-score duplicate, a labelled person in a crowd) is still evidence.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import box_area

from detector.input_size import PresizedTransform

# A box counts as inside an ignore region when at least half of its own area is covered: the rule evaluation uses
# (`evaluation.metrics`, a detection >= 0.5 inside an ignore region is neither TP nor FP at AP@0.5), so what
# evaluation does not count as a false positive, training does not teach as background. Intersection over the box's
# own area, not IoU: a small anchor wholly inside a large crowd or DontCare region has a tiny IoU with it. IoA is
# never below IoU, so every box with IoU >= 0.5 is caught too.
IGNORE_IOA = 0.5
SKIPPED = -1  # the label torchvision's samplers skip (what its Matcher's BETWEEN_THRESHOLDS becomes)


def box_ioa(boxes: Tensor, regions: Tensor) -> Tensor:
    """(N, M): the share of each of ``boxes``' own area that each of ``regions`` covers (both xyxy)."""
    lt = torch.max(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return inter / box_area(boxes)[:, None].clamp(min=1e-9)


def inside_ignore_regions(boxes: Tensor, regions: Tensor | None) -> Tensor:
    """(N,) bool: which of ``boxes`` lie at least `IGNORE_IOA` inside one of ``regions``."""
    if regions is None or not len(regions):
        return torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    return box_ioa(boxes, regions.to(boxes.dtype)).amax(dim=1) >= IGNORE_IOA


class IgnoreRegionRPN(RegionProposalNetwork):
    """torchvision's RPN whose background anchors inside a target's ``ignore`` regions are not sampled."""

    def assign_targets_to_anchors(
        self, anchors: list[Tensor], targets: list[dict[str, Tensor]],
    ) -> tuple[list[Tensor], list[Tensor]]:
        labels, matched_gt_boxes = super().assign_targets_to_anchors(anchors, targets)
        for labels_in_image, anchors_in_image, target in zip(labels, anchors, targets):
            labels_in_image[(labels_in_image == 0) & inside_ignore_regions(anchors_in_image, target.get("ignore"))] \
                = SKIPPED
        return labels, matched_gt_boxes


class IgnoreRegionRoIHeads(RoIHeads):
    """torchvision's RoI heads whose background proposals inside a target's ``ignore`` regions are not sampled.

    torchvision calls `assign_targets_to_proposals` with the boxes and labels but not the targets, so
    `select_training_samples` hands it the regions for the length of that one call.
    """

    def select_training_samples(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]] | None,
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        self.ignore_regions = [t.get("ignore") for t in targets] if targets is not None else []
        try:
            return super().select_training_samples(proposals, targets)
        finally:
            self.ignore_regions = []

    def assign_targets_to_proposals(
        self, proposals: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor],
    ) -> tuple[list[Tensor], list[Tensor]]:
        matched_idxs, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        for labels_in_image, proposals_in_image, regions in zip(labels, proposals, self.ignore_regions):
            labels_in_image[(labels_in_image == 0) & inside_ignore_regions(proposals_in_image, regions)] = SKIPPED
        return matched_idxs, labels


class IgnoreRegionTransform(PresizedTransform):
    """The detection transform, resizing the targets' ``ignore`` regions with the image (torchvision resizes only
    ``boxes``, masks and keypoints). A `PresizedTransform`, because evaluating the model through a backend makes
    its transform one and would otherwise replace this one after the first validation."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict | None]:
        size = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and "ignore" in target:
            target["ignore"] = resize_boxes(target["ignore"], size, image.shape[-2:])
        return image, target


def honour_ignore_regions(model: FasterRCNN) -> FasterRCNN:
    """``model`` (changed in place) trained so that targets' ``ignore`` regions are neither object nor background.

    The RPN and RoI heads become the subclasses above, which add methods and no state, so every weight and setting
    is kept (rebuilding them would repeat every constructor argument); inference is unchanged.
    """
    if type(model.rpn) is not RegionProposalNetwork or type(model.roi_heads) is not RoIHeads:
        raise TypeError(f"expected torchvision's RPN and RoI heads, got {type(model.rpn).__name__} and "
                        f"{type(model.roi_heads).__name__}")
    model.rpn.__class__ = IgnoreRegionRPN
    model.roi_heads.__class__ = IgnoreRegionRoIHeads
    model.transform = IgnoreRegionTransform(model.transform)
    return model
