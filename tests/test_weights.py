"""Weights: torchvision's COCO weights through the torch hub cache, state-dict files, and clear errors."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import get_model_weights

from core.labels import COCO_CATEGORIES, LABEL_IDS
from detector.models import build_detector
from detector.weights import BUNDLED_WEIGHTS, WeightsError, load_model

NAME = "fasterrcnn_mobilenet_v3_large_320_fpn"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, and no network: downloads fail as they do offline."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    yield tmp_path / "checkpoints"
    torch.hub.set_dir(previous)


def test_coco_weights_come_from_the_hub_cache_and_map_to_driving_classes(hub):
    torch.manual_seed(3)
    coco = build_detector(NAME, len(COCO_CATEGORIES))
    hub.mkdir(parents=True)
    torch.save(coco.state_dict(), hub / Path(get_model_weights(NAME).DEFAULT.url).name)
    model, class_map = load_model(NAME, "coco", top_n=30)
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(model.state_dict()[key], coco.state_dict()[key])
    assert class_map[COCO_CATEGORIES.index("car")] == LABEL_IDS["car"]
    assert class_map[COCO_CATEGORIES.index("traffic light")] == LABEL_IDS["traffic_light"]
    assert class_map[COCO_CATEGORIES.index("dog")] == -1


def test_offline_without_cached_coco_weights_names_the_file_and_folder(hub):
    with pytest.raises(WeightsError) as error:
        load_model(NAME, "coco", top_n=30)
    message = str(error.value)
    assert Path(get_model_weights(NAME).DEFAULT.url).name in message and str(hub) in message
    assert "\n" not in message


def test_a_state_dict_file_and_a_training_checkpoint_both_load(tmp_path):
    torch.manual_seed(4)
    model = build_detector(NAME, 11)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    for path in ("plain.pt", "ckpt.pt"):
        loaded, class_map = load_model(NAME, str(tmp_path / path), top_n=10)
        assert torch.equal(loaded.state_dict()["rpn.head.conv.0.0.weight"], model.state_dict()["rpn.head.conv.0.0.weight"])
        assert class_map.tolist() == list(range(11))


@pytest.mark.parametrize("content, message", [(None, "does not exist"), (b"not a checkpoint", "not a readable"),
                                               ({"x": torch.zeros(1)}, "no Faster R-CNN state dict")])
def test_bad_weights_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(WeightsError, match=message):
        load_model(NAME, str(path), top_n=10)


def test_coco_weights_do_not_exist_for_the_bundled_model():
    with pytest.raises(WeightsError, match="only for torchvision models"):
        load_model("driving_mobilenet_v2_fpn", "coco", top_n=10)


def test_default_weights_of_the_bundled_model_are_the_shipped_file():
    if not BUNDLED_WEIGHTS.exists():
        pytest.skip("bundled weights not present")
    model, _ = load_model("driving_mobilenet_v2_fpn", "default", top_n=10)
    shipped = torch.load(BUNDLED_WEIGHTS, weights_only=True)
    key = "roi_heads.box_predictor.bbox_pred.weight"
    assert torch.equal(model.state_dict()[key], shipped[key].float())
