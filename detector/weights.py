"""Weights for the detector: the bundled driving model, torchvision's COCO weights (hub cache), a file, or random.

`load_model` returns the model and its class map (model class index -> driving class id, -1 = not a driving class).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import get_model_weights

from core.labels import COCO_CATEGORIES, NUM_CLASSES, coco_to_driving
from detector.models import BUNDLED_MODEL, DEFAULT_SCORE_THRESH, DRIVING_MODELS, LITE_MODEL, build_detector

log = logging.getLogger(__name__)
WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED_WEIGHTS = WEIGHTS_DIR / f"{BUNDLED_MODEL}.pt"
PREDICTOR_KEY = "roi_heads.box_predictor.cls_score.weight"


class WeightsError(ValueError):
    """Weights that can't be found, read or fitted to the chosen model."""


def coco_class_map() -> np.ndarray:
    class_map = np.full(len(COCO_CATEGORIES), -1, np.int64)
    for coco_id, driving_id in coco_to_driving().items():
        class_map[coco_id] = driving_id
    return class_map


def coco_weights_url(name: str) -> tuple[str, Path]:
    """torchvision's COCO weights URL for ``name`` and where the torch hub cache keeps that file."""
    if name in DRIVING_MODELS:
        raise WeightsError(f"'coco' weights exist only for torchvision models, not '{name}'")
    url = get_model_weights(name).DEFAULT.url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def resolve_weights(name: str, weights: str) -> str:
    """``default`` -> the bundled file of a driving model, ``coco`` for torchvision's; others as given."""
    if weights == "default":
        return str(WEIGHTS_DIR / f"{name}.pt") if name in DRIVING_MODELS else "coco"
    return weights


def weights_file(name: str, weights: str) -> Path | None:
    """The file ``weights`` loads from (``default``, ``coco`` or a path); None for ``random`` (seeded, no file)."""
    weights = resolve_weights(name, weights)
    if weights == "random":
        return None
    return coco_weights_url(name)[1] if weights == "coco" else Path(weights)


def coco_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's COCO weights for ``name``: from the torch hub cache, else downloaded into it."""
    url, cached = coco_weights_url(name)
    folder = cached.parent
    if cached.exists():
        return read_state_dict(cached)
    try:
        return torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any network or hash failure means the same thing to the user
        raise WeightsError(
            f"COCO weights for {name} are not cached and could not be downloaded ({type(exc).__name__}); "
            f"put {cached.name} (from {url}) in {folder}"
        ) from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file (a training checkpoint's ``model`` entry too), loaded with weights_only=True."""
    if not path.is_file():
        raise WeightsError(f"weights file '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise WeightsError(f"weights file '{path}' is not a readable PyTorch state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or PREDICTOR_KEY not in state:
        raise WeightsError(f"weights file '{path}' holds no Faster R-CNN state dict ('{PREDICTOR_KEY}' missing)")
    return state


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> None:
    """Load ``state`` into ``model``, or fail with one line saying what doesn't fit."""
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [k for k in target if k in state and state[k].shape != target[k].shape]
    if missing or unexpected or mismatched:
        example = (
            f"{mismatched[0]}: file {tuple(state[mismatched[0]].shape)} vs model {tuple(target[mismatched[0]].shape)}"
            if mismatched else (missing or unexpected)[0]
        )
        raise WeightsError(
            f"weights '{source}' do not fit model '{name}': {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} mismatched tensors (e.g. {example})"
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def load_model(
    name: str, weights: str, top_n: int, min_size: int = 0, max_size: int = 0, score_thresh: float = DEFAULT_SCORE_THRESH,
) -> tuple[nn.Module, np.ndarray]:
    """Build ``name`` in eval mode with ``weights`` = ``default`` | ``coco`` | ``random`` | a file path."""
    weights = resolve_weights(name, weights)
    if weights == "random":
        log.warning("RANDOM WEIGHTS: model '%s' is untrained and its detections are noise (tests only)", name)
        model = build_detector(name, NUM_CLASSES, top_n, min_size, max_size, score_thresh)
        return model.eval(), np.arange(NUM_CLASSES)
    if name == LITE_MODEL and Path(weights) == weights_file(name, "default") and not Path(weights).exists():
        raise WeightsError(f"'{name}' has no weights at '{weights}': train them with "
                           "driving-detect train --config configs/train-driving-lite.yaml (docs/MODEL_CARD.md)")
    state = coco_state_dict(name) if weights == "coco" else read_state_dict(Path(weights))
    num_classes = state[PREDICTOR_KEY].shape[0]
    model = build_detector(name, num_classes, top_n, min_size, max_size, score_thresh)
    fit_state_dict(model, state, weights, name)
    if num_classes == len(COCO_CATEGORIES):
        return model.eval(), coco_class_map()
    if num_classes != NUM_CLASSES:
        raise WeightsError(f"weights '{weights}' do not fit: {num_classes} classes; expected {NUM_CLASSES} (driving) or 91 (COCO)")
    return model.eval(), np.arange(NUM_CLASSES)
