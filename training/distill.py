"""Distillation of the light driving model from the bundled one: initialisation by copying and factorising the
teacher's layers, and the losses that keep the student's features and scores close to the teacher's.

A student built from scratch would need ImageNet pre-training we can't download and days of CPU training; started
from the teacher's own weights (its backbone whole, its dense layers factorised and refit, `init_from_teacher` and
`reconstruct`) it begins within a few points of it, and the feature and score losses pull it the rest of the way
on every frame we have, labelled or not.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RPNHead, concat_box_prediction_layers

from detector.models import separable_conv


@torch.no_grad()
def factorise_conv(dense: nn.Conv2d, separable: nn.Sequential) -> None:
    """The depthwise-separable pair closest to a dense 3x3 convolution: per input channel, the best rank-k split
    (k depthwise filters per channel, `separable_conv`'s ``rank``) of its (out, 9) kernel slice into 3x3 depthwise
    filters and pointwise columns."""
    weight = dense.weight  # (out, in, 3, 3)
    out_ch, in_ch = weight.shape[:2]
    rank = separable[0].out_channels // in_ch
    u, sv, vh = torch.linalg.svd(weight.permute(1, 0, 2, 3).reshape(in_ch, out_ch, 9), full_matrices=False)
    separable[0].weight.copy_(vh[:, :rank].reshape(in_ch * rank, 1, 3, 3))
    columns = u[:, :, :rank] * sv[:, None, :rank]  # (in, out, rank); depthwise output c*rank + r is column (c, r)
    separable[1].weight.copy_(columns.permute(1, 0, 2).reshape(out_ch, in_ch * rank, 1, 1))
    separable[1].bias.copy_(dense.bias)


@torch.no_grad()
def thin_projection(teacher: nn.Module, thin: nn.Conv2d) -> None:
    """The C -> thin projection that keeps most of what the teacher's fc6 (R x C*49) reads: the top right-singular
    vectors of its weight seen as (R*49, C)."""
    weight = teacher.fc6.weight
    channels = weight.shape[1] // 49
    per_position = weight.reshape(weight.shape[0], channels, 49).permute(0, 2, 1).reshape(-1, channels)
    basis = torch.linalg.svd(per_position, full_matrices=False)[2][:thin.out_channels]  # (thin, C)
    thin.weight.copy_(basis.reshape(thin.out_channels, channels, 1, 1))


@torch.no_grad()
def init_from_teacher(student: FasterRCNN, teacher: FasterRCNN) -> None:
    """Every student layer that can start from its teacher counterpart without data: copied or factorised. The box
    head's FC layers are fit by `reconstruct`."""
    student.backbone.body.load_state_dict(teacher.backbone.body.state_dict())
    student.backbone.fpn.inner_blocks.load_state_dict(teacher.backbone.fpn.inner_blocks.state_dict())
    for t_layer, s_layer in zip(teacher.backbone.fpn.layer_blocks, student.backbone.fpn.layer_blocks):
        factorise_conv(t_layer[0], s_layer)
    init_rpn_head(student.rpn.head, teacher.rpn.head)
    thin_projection(teacher.roi_heads.box_head, student.roi_heads.box_roi_pool.thin)
    student.roi_heads.box_predictor.load_state_dict(teacher.roi_heads.box_predictor.state_dict())


@torch.no_grad()
def init_rpn_head(student: RPNHead, teacher: RPNHead) -> None:
    """The student's narrower separable RPN convolution from the teacher's dense one: factorised at full width
    (`factorise_conv`), cut to the student's width by keeping the channels with the largest weights into and out of
    them (`reconstruct` re-chooses them on frames), and the objectness and box layers reading those channels."""
    dense = teacher.conv[0][0]
    full = separable_conv(dense.in_channels, dense.out_channels, student.conv[0][0].out_channels // dense.in_channels)
    factorise_conv(dense, full)
    score = (full[1].weight.flatten(1) ** 2).sum(1) * outgoing_energy(teacher)
    keep = top_channels(score, student.conv[0][1].out_channels)
    student.conv[0][0].weight.copy_(full[0].weight)
    student.conv[0][1].weight.copy_(full[1].weight[keep])
    student.conv[0][1].bias.copy_(full[1].bias[keep])
    for ours, theirs in ((student.cls_logits, teacher.cls_logits), (student.bbox_pred, teacher.bbox_pred)):
        ours.weight.copy_(theirs.weight[:, keep])
        ours.bias.copy_(theirs.bias)


def outgoing_energy(head: RPNHead) -> torch.Tensor:
    """Per hidden channel (C,), the summed squared weights the objectness and box layers read it with."""
    return (torch.cat([head.cls_logits.weight, head.bbox_pred.weight]).flatten(1) ** 2).sum(0)


def top_channels(score: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` highest ``score`` channels, in channel order."""
    return score.argsort(descending=True)[:count].sort().values


def distill_losses(student: FasterRCNN, teacher: FasterRCNN, images: list[torch.Tensor], targets: list[dict],
                   rois_per_image: int = 128, temperature: float = 2.0,
                   objectness_weight: float = 40.0, regression_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The student's own detection losses on the labels plus four distillation terms on the same batch.

    ``loss_feature``: mean squared difference of every FPN level (the teacher's features, which the RPN and RoI
    layers read); ``loss_rpn_kd``: `objectness_kd` of both RPNs, anchor for anchor (they share the anchors), times
    ``objectness_weight``; ``loss_rpn_box_kd``: `regression_kd` of both RPNs' box deltas times
    ``regression_weight``; ``loss_kd``: KL divergence of the class scores (softened by ``temperature``) of both box
    heads on ``rois_per_image`` of the student's proposals (`kd_rois`), where the teacher's view of background and
    people also counts on frames whose labels miss them.

    Args:
        images: (3, H, W) float RGB in [0, 1] (`detector.preprocess.to_model_input`).
        targets: per image ``boxes`` (K, 4) xyxy, ``labels`` (K,) and optionally ``ignore`` (M, 4) xyxy regions,
            honoured when the student is built by `training.train.build_training_model` (`training.ignore`).
    """
    image_list, targets = student.transform(images, targets)
    features = student.backbone(image_list.tensors)
    with torch.no_grad():
        teacher_features = teacher.backbone(image_list.tensors)
        teacher_objectness, teacher_deltas = teacher.rpn.head(list(teacher_features.values()))
    loss_feature = sum(F.mse_loss(features[k], teacher_features[k]) for k in features) / len(features)
    seen = []
    hook = student.rpn.head.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        proposals, rpn_losses = student.rpn(image_list, features, targets)
    finally:
        hook.remove()
    objectness, deltas = concat_box_prediction_layers(*seen[0])  # per anchor, in the RPN's own order
    teacher_objectness, teacher_deltas = concat_box_prediction_layers(teacher_objectness, teacher_deltas)
    loss_rpn_kd = objectness_weight * objectness_kd(objectness, teacher_objectness)
    loss_rpn_box_kd = regression_weight * regression_kd(deltas, teacher_deltas, teacher_objectness)
    _, roi_losses = student.roi_heads(features, proposals, image_list.image_sizes, targets)
    sampled = [kd_rois(p.detach(), rois_per_image) for p in proposals]
    loss_kd = score_kd(student, teacher, features, teacher_features, sampled, image_list, temperature)
    return {**rpn_losses, **roi_losses, "loss_feature": loss_feature, "loss_rpn_kd": loss_rpn_kd,
            "loss_rpn_box_kd": loss_rpn_box_kd, "loss_kd": loss_kd}


def objectness_kd(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Binary KL(teacher || student) of every anchor's objectness, weighted by the teacher's probability + 0.05:
    most anchors are easy background, and the few the teacher sees objects at (small traffic lights among them,
    which the light RPN lost most of) would otherwise count for little.

    Args:
        student, teacher: objectness logits of the same anchors, (K, 1) or any shape alike (torchvision's
            `concat_box_prediction_layers` gives them for every level and image).
    """
    target = torch.sigmoid(teacher)
    weight = target + 0.05
    divergence = (F.binary_cross_entropy_with_logits(student, target, reduction="none")
                  - F.binary_cross_entropy(target, target, reduction="none"))
    return (weight * divergence).sum() / weight.sum()


def regression_kd(student: torch.Tensor, teacher: torch.Tensor, teacher_objectness: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 distance of the student's anchor box deltas from the teacher's, weighted by the teacher's objectness
    probability: where the teacher sees an object the student's proposal should land where the teacher's does (a
    small sign the light RPN scores but places badly gets no proposal that survives NMS and the top-N cut).

    Args:
        student, teacher: box deltas (K, 4) of the same K anchors (`concat_box_prediction_layers`).
        teacher_objectness: the teacher's objectness logits (K, 1) of those anchors.
    """
    weight = torch.sigmoid(teacher_objectness.flatten())
    distance = F.smooth_l1_loss(student, teacher, beta=1 / 9, reduction="none").sum(dim=1)
    return (weight * distance).sum() / weight.sum().clamp(min=1e-6)


def kd_rois(proposals: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` proposals the class scores are distilled on: the first half of them the RPN's best (the
    proposals come ranked by objectness), where test-time detections and the false positives that outrank small
    true signs come from, the rest drawn at random from the others, so background is still taught.

    Args:
        proposals: (P, 4) xyxy, ranked by objectness as `torchvision.models.detection.rpn.RegionProposalNetwork`
            returns them.
    """
    top = count // 2
    rest = top + torch.randperm(max(len(proposals) - top, 0), device=proposals.device)[:count - top]
    return proposals[torch.cat([torch.arange(min(top, len(proposals)), device=proposals.device), rest])]


def score_kd(student: FasterRCNN, teacher: FasterRCNN, features: dict, teacher_features: dict,
             rois: list[torch.Tensor], image_list: ImageList, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softened class scores on the same RoIs."""
    def logits(model: FasterRCNN, feats: dict) -> torch.Tensor:
        pooled = model.roi_heads.box_roi_pool(feats, rois, image_list.image_sizes)
        return model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))[0]

    with torch.no_grad():
        target = F.softmax(logits(teacher, teacher_features) / temperature, dim=1)
    log_probs = F.log_softmax(logits(student, features) / temperature, dim=1)
    return F.kl_div(log_probs, target, reduction="batchmean") * temperature ** 2


def least_squares(inputs: torch.Tensor, targets: torch.Tensor, bias: bool, samples: int = 60000) -> torch.Tensor:
    """W (out, in [+1]) minimising ||W x - t||^2 over every pixel of (N, in, H, W) ``inputs`` and (N, out, H, W)
    ``targets`` (a random ``samples`` of them), ridge-regularised; the last column is the bias when ``bias``."""
    x = inputs.permute(1, 0, 2, 3).reshape(inputs.shape[1], -1)
    t = targets.permute(1, 0, 2, 3).reshape(targets.shape[1], -1)
    if x.shape[1] > samples:
        keep = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))[:samples]
        x, t = x[:, keep], t[:, keep]
    if bias:
        x = torch.cat([x, torch.ones_like(x[:1])])
    gram = x @ x.T
    gram += 1e-4 * gram.diagonal().mean() * torch.eye(len(gram))
    return torch.linalg.solve(gram, x @ t.T).T


@torch.no_grad()
def reconstruct(student: FasterRCNN, teacher: FasterRCNN, images: list[torch.Tensor]) -> None:
    """Refit every layer that `init_from_teacher` factorised, so the student's outputs match the teacher's on real
    frames (reconstruction as in channel pruning, He et al. 2017): each separable convolution's pointwise part and
    the box head's FC layers (`fit_box_head`) by least squares, in order and on the student's own inputs, so that
    earlier errors are corrected rather than compounded.

    Args:
        images: (3, H, W) float RGB in [0, 1], a few frames like the footage (a dozen is plenty).
    """
    student.eval(), teacher.eval()
    tensors = teacher.transform(images)[0].tensors
    body = teacher.backbone.body(tensors)  # the student's body is the same
    features_t = fit_separable_outputs(student.backbone.fpn, teacher.backbone.fpn, body)
    features_s = student.backbone.fpn(body)  # after the refit
    fit_rpn_head(student.rpn.head, teacher.rpn.head, list(features_s.values()), list(features_t.values()))
    fit_box_head(student, teacher, tensors, features_s, features_t)


def fit_rpn_head(student: RPNHead, teacher: RPNHead, features_s: list[torch.Tensor], features_t: list[torch.Tensor]
                 ) -> None:
    """The student's RPN refit as `fit_box_head` fits the box head: its pointwise half at the teacher's width to
    give the teacher's hidden channels, cut to the student's width by keeping the channels that carry most into
    the objectness and box outputs, then those two layers refit on what is kept to give the teacher's outputs.

    Args:
        features_s, features_t: each model's FPN levels (N, C, H, W) for the same frames.
    """
    def pixels(maps: list[torch.Tensor]) -> torch.Tensor:  # every level's pixels as one (N, C, P, 1) batch
        return torch.cat([m.flatten(2) for m in maps], 2)[..., None]

    depthwise = pixels([student.conv[0][0](f) for f in features_s])
    dense_t = [teacher.conv[0][0](f) for f in features_t]  # the teacher's hidden channels before their ReLU
    weight = least_squares(depthwise, pixels(dense_t), bias=True)
    hidden = F.relu(torch.einsum("oi,nipq->nopq", weight[:, :-1], depthwise) + weight[:, -1, None, None])
    keep = top_channels((hidden ** 2).mean((0, 2, 3)) * outgoing_energy(teacher), student.conv[0][1].out_channels)
    load_fit(student.conv[0][1], weight[keep])
    for ours, theirs in ((student.cls_logits, teacher.cls_logits), (student.bbox_pred, teacher.bbox_pred)):
        load_fit(ours, least_squares(hidden[:, keep], pixels([theirs(F.relu(d)) for d in dense_t]), bias=True))


def fit_box_head(student: FasterRCNN, teacher: FasterRCNN, tensors: torch.Tensor, features_s: dict,
                 features_t: dict) -> None:
    """The student's FC layers fit by least squares on the teacher's proposals, each pooled from its own model's
    FPN features (``features_s``, ``features_t`` of ``tensors``): a first layer as wide as the teacher's to give
    its fc6 outputs, cut to the student's width by keeping the units that carry most into fc7 (mean squared
    activation times squared fc7 weights; channel pruning as in He et al. 2017), then fc7 refit on what is kept to
    give the teacher's fc7 outputs."""
    sizes = [tuple(tensors.shape[-2:])] * len(tensors)
    proposals = teacher.rpn(ImageList(tensors, sizes), features_t)[0]
    head_t, head_s = teacher.roi_heads.box_head, student.roi_heads.box_head
    fc6_t = head_t.fc6(teacher.roi_heads.box_roi_pool(features_t, proposals, sizes).flatten(1))
    fc7_t = head_t.fc7(F.relu(fc6_t))
    pooled = student.roi_heads.box_roi_pool(features_s, proposals, sizes).flatten(1)
    weight = least_squares(pooled[..., None, None], fc6_t[..., None, None], bias=True)  # (R, in + 1)
    hidden = F.relu(pooled @ weight[:, :-1].T + weight[:, -1])
    keep = top_channels((hidden ** 2).mean(0) * (head_t.fc7.weight ** 2).sum(0), head_s.fc6.out_features)
    load_fit(head_s.fc6, weight[keep])
    load_fit(head_s.fc7, least_squares(hidden[:, keep, None, None], fc7_t[..., None, None], bias=True))


def load_fit(layer: nn.Linear | nn.Conv2d, weight: torch.Tensor) -> None:
    """A `least_squares` fit with bias, (out, in + 1), into a linear or 1x1 convolution layer."""
    layer.weight.copy_(weight[:, :-1].reshape(layer.weight.shape))
    layer.bias.copy_(weight[:, -1])


def fit_pointwise(separable: nn.Sequential, depthwise_out: torch.Tensor, target: torch.Tensor) -> None:
    load_fit(separable[1], least_squares(depthwise_out, target, bias=True))


def fit_separable_outputs(student_fpn: nn.Module, teacher_fpn: nn.Module, features: dict) -> dict:
    """The FPN's separable output convolutions refit on the inputs they see (captured by forward hooks); returns
    the teacher FPN's output, which the RPN refit reads next."""
    seen: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def capture(side: str, index: int):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen[side, index] = (args[0], out)
        return hook

    hooks = [block.register_forward_hook(capture(side, i))
             for side, fpn in (("s", student_fpn), ("t", teacher_fpn)) for i, block in enumerate(fpn.layer_blocks)]
    try:
        teacher_out = teacher_fpn(features)
        student_fpn(features)
    finally:
        for hook in hooks:
            hook.remove()
    for i, block in enumerate(student_fpn.layer_blocks):
        student_in, teacher_level_out = seen["s", i][0], seen["t", i][1]
        fit_pointwise(block, block[0](student_in), teacher_level_out)
    return teacher_out
