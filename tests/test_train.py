"""Training smoke run on CPU: two iterations on a generated COCO dataset, a checkpoint, resume, and bad config;
ignore regions: skipped by the RPN's and the box head's sampling, moved by crops and flips, made from weak teacher
boxes."""
from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import training.ignore
from commands.train import main
from detector.datasets import AnnotatedImage, DataSource
from detector.input_size import presized
from training.config import TrainConfig
from training.ignore import IgnoreRegionTransform
from training.train import TrainImages, build_training_model, load_images

CHECKPOINT_KEYS = {"model", "optimizer", "scheduler", "epoch", "batches_done", "iteration", "history", "config"}


def write_coco(root: Path) -> Path:
    """Two 160x120 frames with a filled rectangle each (one car, one person) and their COCO JSON."""
    objects = {"f0.jpg": (1, [20, 30, 60, 40]), "f1.jpg": (6, [90, 20, 30, 70])}
    images, annotations = [], []
    for i, (name, (category, (x, y, w, h))) in enumerate(objects.items()):
        frame = np.full((120, 160, 3), 70, np.uint8)
        cv2.rectangle(frame, (x, y), (x + w, y + h), (40, 180, 230), -1)
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / name), frame)
        images.append({"id": i, "file_name": name, "width": 160, "height": 120})
        annotations.append({"id": i + 1, "image_id": i, "category_id": category, "bbox": [x, y, w, h],
                            "area": w * h, "iscrowd": 0})
    path = root / "train.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "car"}, {"id": 6, "name": "person"}]}))
    return path


def write_config(tmp_path: Path, data: Path) -> Path:
    config = tmp_path / "train.yaml"
    config.write_text(f"""model: driving_mobilenet_v2_fpn
backbone_weights: none
train: [{{spec: "coco:{data}"}}]
val: [{{spec: "coco:{data}"}}]
out_dir: {tmp_path / 'run'}
epochs: 1
batch_size: 1
lr: 0.01
warmup_iters: 1
train_min_sizes: [128]
min_size: 128
max_size: 160
rpn_pre_nms_top_n_train: 100
rpn_post_nms_top_n_train: 50
box_batch_size_per_image: 32
eval_top_n: 20
device: cpu
amp: false
hflip: 0.0
""")
    return config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, write_coco(tmp_path / "data"))


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_iterations_then_resume(config: Path, tmp_path: Path, capsys) -> None:
    last = tmp_path / "run" / "last.pt"
    assert main(["--config", str(config)]) == 0
    assert f"checkpoint: {last}" in capsys.readouterr().out
    first = load_checkpoint(last)
    assert set(first) == CHECKPOINT_KEYS
    assert (first["epoch"], first["iteration"]) == (0, 2)  # 2 images, batch 1, one epoch
    (record,) = json.loads(first["history"])
    assert set(record["losses"]) >= {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert "mAP50" in record["val_ap50"] and 0.0 <= record["val_ap50"]["mAP50"] <= 1.0
    assert json.loads(first["config"])["min_size"] == 128

    assert main(["--config", str(config), "--resume", str(last), "epochs=2"]) == 0
    second = load_checkpoint(last)
    assert (second["epoch"], second["iteration"]) == (1, 4)
    assert [r["epoch"] for r in json.loads(second["history"])] == [1, 2]
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["iteration"] == 4
    changed = [k for k, v in first["model"].items() if v.is_floating_point() and not torch.equal(v, second["model"][k])]
    assert changed, "resumed training must update the weights"


def test_export_writes_fp16_weights_and_averages_several(tmp_path: Path, capsys) -> None:
    key = "roi_heads.box_predictor.cls_score.weight"  # what every Faster R-CNN state dict holds
    run_a, run_b = tmp_path / "a" / "last.pt", tmp_path / "b.pt"
    run_a.parent.mkdir()
    torch.save({"model": {key: torch.ones(2, 3), "bn.num_batches_tracked": torch.tensor(7)}, "epoch": 0}, run_a)
    torch.save({key: torch.full((2, 3), 4.0, dtype=torch.float16), "bn.num_batches_tracked": torch.tensor(9)}, run_b)
    one, mean = tmp_path / "one.pt", tmp_path / "mean.pt"
    assert main(["--export", str(run_a), str(one)]) == 0
    assert torch.load(one, weights_only=True)[key].dtype == torch.float16
    assert main(["--export", str(run_a), str(run_b), str(mean)]) == 0  # a checkpoint and a weights file
    assert "the mean of 2" in capsys.readouterr().out
    averaged = torch.load(mean, weights_only=True)
    assert torch.equal(averaged[key], torch.full((2, 3), 2.5, dtype=torch.float16))
    assert int(averaged["bn.num_batches_tracked"]) == 7  # counters are not averaged

    other = tmp_path / "other.pt"
    torch.save({key: torch.ones(4, 3)}, other)
    assert main(["--export", str(run_a), str(other), str(tmp_path / "x.pt")]) == 2
    assert "cannot be averaged" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["--export", str(run_a)])  # no file to write
    assert exit_info.value.code == 2


def test_fine_tune_from_weights_with_a_repeated_dataset(config: Path, tmp_path: Path) -> None:
    """init_weights starts from a checkpoint's model (fresh schedule); repeat shows a dataset twice per epoch."""
    assert main(["--config", str(config)]) == 0
    start = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    data = tmp_path / "data" / "train.json"
    text = config.read_text().replace(f'train: [{{spec: "coco:{data}"}}]',
                                      f'train: [{{spec: "coco:{data}", repeat: 2}}]')
    config.write_text(text + f"init_weights: {tmp_path / 'run' / 'last.pt'}\n")
    out = tmp_path / "tuned"
    assert main(["--config", str(config), f"out_dir={out}", "lr=0.0"]) == 0
    tuned = load_checkpoint(out / "last.pt")
    assert (tuned["epoch"], tuned["iteration"]) == (0, 4)  # 2 images x repeat 2, batch 1
    assert all(torch.equal(v, tuned["model"][k]) for k, v in start.items()), "lr 0 must keep the initial weights"


@pytest.mark.parametrize("override", ["init_weights=missing.pt", "train=[{spec: 'coco:x.json', repeat: 0}]"])
def test_bad_fine_tune_settings_exit_2(config: Path, override: str, capsys) -> None:
    assert main(["--config", str(config), override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_crops_keep_boxes_inside_and_labels_with_their_boxes(tmp_path: Path) -> None:
    """A crop must move boxes with the image, clip them to it and drop a box together with its label."""
    torch.manual_seed(0)
    frame = np.zeros((240, 320, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "f.jpg"), frame)
    boxes = np.array([[10, 10, 40, 30], [150, 100, 230, 200], [280, 200, 318, 238]], np.float32)
    labels = np.array([1, 6, 7])
    images = [AnnotatedImage(tmp_path / "f.jpg", 320, 240, boxes, labels)]
    sizes = dict(zip(labels.tolist(), (boxes[:, 2:] - boxes[:, :2]).tolist()))
    cropped = TrainImages(images, crop=1.0, crop_min_scale=0.3)
    shapes = set()
    for _ in range(40):
        image, target = cropped[0]
        height, width = image.shape[-2:]
        shapes.add((height, width))
        out = target["boxes"]
        assert len(out) == len(target["labels"]) >= 1
        assert (out[:, :2] >= 0).all() and (out[:, 2] <= width).all() and (out[:, 3] <= height).all()
        for box, label in zip(out.tolist(), target["labels"].tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            assert 0 < w <= sizes[label][0] + 1e-3 and 0 < h <= sizes[label][1] + 1e-3
    assert len(shapes) > 1, "crop=1.0 must crop"
    image, target = TrainImages(images)[0]
    assert image.shape[-2:] == (240, 320) and torch.equal(target["boxes"], torch.from_numpy(boxes))


def test_min_teacher_score_applies_to_the_training_sets_only(tmp_path: Path) -> None:
    """A teacher box below min_teacher_score leaves training (its image too, when nothing is left); val keeps it."""
    data = write_coco(tmp_path / "data")
    coco = json.loads(data.read_text())
    coco["annotations"][0].update(source="teacher", score=0.4)   # the car in f0
    coco["annotations"][1].update(source="human")                 # the person in f1
    data.write_text(json.dumps(coco))
    sources = [DataSource(f"coco:{data}", repeat=2)]
    assert [len(im.boxes) for im in load_images(sources, 0.5)] == [0, 1, 0, 1]
    assert [len(im.boxes) for im in load_images(sources)] == [1, 1, 1, 1]
    config = write_config(tmp_path, data)
    assert main(["--config", str(config), "min_teacher_score=0.5"]) == 0
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["iteration"] == 1, "f0 has no box left, so one image, batch 1"
    (record,) = json.loads(state["history"])
    assert "car" in record["val_ap50"], "val still reads the car"


@pytest.mark.parametrize("override", ["no_such_key=1", "schedule=linear", "train=[]", "crop=1.5",
                                      "min_teacher_score=1.5", "ignore_below_score=-0.1"])
def test_bad_config_exits_2(config: Path, override: str, capsys) -> None:
    assert main(["--config", str(config), override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (config.parent / "run" / "last.pt").exists()


def test_the_bundled_training_configs_load():
    from core.config import load_config
    from stream.config import CONFIG_DIR
    from training.train import TrainConfig

    cfg = load_config(TrainConfig, CONFIG_DIR / "train-driving.yaml")
    assert cfg.model == "driving_mobilenet_v2_fpn" and cfg.epochs == 12 and len(cfg.train) == 2
    stage2 = load_config(TrainConfig, CONFIG_DIR / "train-driving-crop.yaml")
    assert stage2.init_weights == "runs/driving/stage1.pt" and stage2.crop > 0
    assert [s.spec for s in stage2.train] == [s.spec for s in cfg.train]


def test_the_v2_config_and_its_gtsdb_splits():
    """Stage 3 fine-tunes the shipped weights; the GTSDB train and hold-out stems are disjoint contiguous ranges."""
    from core.config import load_config
    from stream.config import CONFIG_DIR
    from training.train import TrainConfig

    cfg = load_config(TrainConfig, CONFIG_DIR / "train-driving-v2.yaml")
    assert cfg.init_weights == "detector/weights/driving_mobilenet_v2_fpn.pt" and len(cfg.train) == 4
    assert min(cfg.train_min_sizes) <= 288 and max(cfg.train_min_sizes) >= 544 and cfg.max_size >= 1200
    assert cfg.epochs == cfg.eval_every == 1, "one validation, at the end"
    splits = {kind: [int(s) for s in (CONFIG_DIR / "splits" / f"gtsdb-{kind}.txt").read_text().split()]
              for kind in ("train", "val")}
    assert not set(splits["train"]) & set(splits["val"])
    assert splits["val"] == list(range(190, 240)) + list(range(500, 600))
    assert splits["train"] == list(range(0, 185)) + list(range(245, 495))   # 5-image guard bands left out
    assert {s.split for s in cfg.train + cfg.val if "gtsdb" in s.spec} == {
        "configs/splits/gtsdb-train.txt", "configs/splits/gtsdb-val.txt"}


def test_the_v3_config_weights_the_sign_photos_and_calibration_uses_its_training_data():
    """Stage 4 (the bundled weights) continues stage 3 on the same data with the road-sign photos shown 3x; the
    int8 calibration set is drawn from those training sources, never from a val split."""
    from core.config import load_config
    from detector.calibration import DEFAULT_CALIBRATION
    from stream.config import CONFIG_DIR
    from training.train import TrainConfig

    v2 = load_config(TrainConfig, CONFIG_DIR / "train-driving-v2.yaml")
    v3 = load_config(TrainConfig, CONFIG_DIR / "train-driving-v3.yaml")
    assert v3.init_weights == "detector/weights/driving_mobilenet_v2_fpn-v2.pt" and v3.lr < v2.lr
    assert [(s.spec, s.split) for s in v3.train] == [(s.spec, s.split) for s in v2.train]
    assert {s.spec: s.repeat for s in v3.train}["voc:../shared/data/roadsigns"] == 3
    assert {(s.spec, s.split) for s in DEFAULT_CALIBRATION} <= {(s.spec, s.split) for s in v3.train}
    assert v3.val == v2.val


# Anchors / proposals (xyxy) against one person box and two ignore regions: inside the first region; outside
# everything; partly (6%) inside the first region; the person box itself, wholly inside the second region.
CANDIDATES = torch.tensor([[10, 10, 30, 30], [200, 200, 220, 220], [50, 50, 90, 90], [100, 100, 150, 150]],
                          dtype=torch.float32)
PERSON = torch.tensor([[100, 100, 150, 150]], dtype=torch.float32)
REGIONS = torch.tensor([[0, 0, 60, 60], [90, 90, 160, 160]], dtype=torch.float32)


@pytest.fixture(scope="module")
def training_model() -> torch.nn.Module:
    cfg = TrainConfig(backbone_weights="none", train=[DataSource("coco:unused.json")], train_min_sizes=[128],
                      min_size=128, max_size=160)
    return build_training_model(cfg).train()


def target(ignore: bool) -> dict[str, torch.Tensor]:
    return {"boxes": PERSON, "labels": torch.tensor([6]), **({"ignore": REGIONS} if ignore else {})}


def test_the_rpn_samples_an_anchor_inside_an_ignore_region_neither_as_object_nor_as_background(training_model):
    rpn = training_model.rpn
    plain, _ = rpn.assign_targets_to_anchors([CANDIDATES], [target(ignore=False)])
    assert plain[0].tolist() == [0, 0, 0, 1]
    labels, matched = rpn.assign_targets_to_anchors([CANDIDATES], [target(ignore=True)])
    assert labels[0].tolist() == [-1, 0, 0, 1], "inside: skipped; outside, 6% inside: background; matched: object"
    assert torch.equal(matched[0][3], PERSON[0])
    positive, negative = rpn.fg_bg_sampler(labels)
    assert positive[0].tolist() == [0, 0, 0, 1] and negative[0].tolist() == [0, 1, 1, 0]


def test_the_box_head_samples_a_proposal_inside_an_ignore_region_neither_as_object_nor_as_background(training_model):
    heads = training_model.roi_heads
    plain, _, plain_labels, _ = heads.select_training_samples([CANDIDATES.clone()], [target(ignore=False)])
    assert len(plain[0]) == 5 and sorted(plain_labels[0].tolist()) == [0, 0, 0, 6, 6], "4 proposals + the GT box"
    sampled, _, labels, _ = heads.select_training_samples([CANDIDATES.clone()], [target(ignore=True)])
    by_box = {tuple(box): label for box, label in zip(sampled[0].tolist(), labels[0].tolist())}
    assert (10, 10, 30, 30) not in by_box, "inside an ignore region: not sampled"
    assert by_box[200, 200, 220, 220] == 0 and by_box[50, 50, 90, 90] == 0, "outside: still background"
    assert by_box[100, 100, 150, 150] == 6, "a labelled box inside a region stays an object"
    assert heads.ignore_regions == [], "the regions are held for one call only"


def test_the_model_transform_resizes_ignore_regions_with_the_boxes_and_survives_evaluation(training_model):
    images = [torch.rand(3, 240, 320)]
    _, (resized,) = training_model.transform(images, [{"boxes": PERSON, "labels": torch.tensor([6]),
                                                       "ignore": PERSON.clone()}])
    assert not torch.equal(resized["boxes"], PERSON), "the image was resized (128 short side)"
    assert torch.equal(resized["ignore"], resized["boxes"])
    presized(training_model)  # what validation through a backend does to the model
    assert isinstance(training_model.transform, IgnoreRegionTransform)


def test_crops_and_flips_move_ignore_regions_with_the_image(tmp_path: Path) -> None:
    """The ignore region is painted white: after any crop and flip, the returned region is the white area's box
    (clipped, not dropped, when the crop cuts it)."""
    torch.manual_seed(0)
    random.seed(0)
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[100:200, 150:230] = 128       # the car
    frame[10:90, 10:120] = 255          # the ignore region
    cv2.imwrite(str(tmp_path / "f.png"), frame)
    images = [AnnotatedImage(tmp_path / "f.png", 320, 240, np.array([[150, 100, 230, 200]], np.float32),
                             np.array([1]), np.array([[10, 10, 120, 90]], np.float32))]
    dataset = TrainImages(images, hflip=0.5, crop=1.0, crop_min_scale=0.3)
    clipped = 0
    for _ in range(40):
        image, target = dataset[0]
        white = image[0] > 0.9
        if not white.any():
            assert len(target["ignore"]) == 0
            continue
        ys, xs = torch.nonzero(white, as_tuple=True)
        expected = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert len(target["ignore"]) == 1 and torch.allclose(target["ignore"][0], expected), (target, expected)
        clipped += bool(((expected[2:] - expected[:2]) < torch.tensor([110, 80])).any())
    assert clipped, "some crop must cut the region"


def test_teacher_boxes_below_ignore_below_score_become_ignore_regions(tmp_path: Path) -> None:
    data = write_coco(tmp_path / "data")
    coco = json.loads(data.read_text())
    coco["annotations"][1].update(source="teacher", score=0.4)   # the person in f1
    data.write_text(json.dumps(coco))
    sources = [DataSource(f"coco:{data}")]
    person = [[90, 20, 120, 90]]
    f1 = load_images(sources, ignore_below_score=0.5)[1]
    assert len(f1.boxes) == 0 and f1.ignore.tolist() == person
    f1 = load_images(sources, ignore_below_score=0.3)[1]
    assert f1.boxes.tolist() == person and len(f1.ignore) == 0
    f1 = load_images(sources, min_teacher_score=0.45, ignore_below_score=0.5)[1]
    assert len(f1.boxes) == len(f1.ignore) == 0, "below min_teacher_score: dropped, as before"
    f0 = load_images(sources, ignore_below_score=0.9)[0]
    assert len(f0.boxes) == 1 and len(f0.ignore) == 0, "a human box is never made an ignore region"


def test_ignore_below_score_at_or_under_min_teacher_score_exits_2(config: Path, capsys) -> None:
    assert main(["--config", str(config), "min_teacher_score=0.5", "ignore_below_score=0.5"]) == 2
    err = capsys.readouterr().err
    assert "'ignore_below_score' (0.5) must be 0 or above 'min_teacher_score' (0.5)" in err


def test_training_with_ignore_regions_then_resume(tmp_path: Path, monkeypatch) -> None:
    """A crowd region and a weak teacher box reach both samplers through crops and flips; losses stay finite."""
    data = write_coco(tmp_path / "data")
    coco = json.loads(data.read_text())
    coco["annotations"] += [
        {"id": 3, "image_id": 0, "category_id": 6, "bbox": [100, 60, 50, 50], "area": 2500, "iscrowd": 1},
        {"id": 4, "image_id": 0, "category_id": 6, "bbox": [0, 70, 20, 45], "area": 900, "iscrowd": 0,
         "source": "teacher", "score": 0.35},
    ]
    data.write_text(json.dumps(coco))
    config = write_config(tmp_path, data)
    config.write_text(config.read_text().replace("hflip: 0.0", "hflip: 0.5\ncrop: 0.5\nignore_below_score: 0.5"))
    skipped = []
    real = training.ignore.inside_ignore_regions

    def spy(boxes: torch.Tensor, regions: torch.Tensor | None) -> torch.Tensor:
        inside = real(boxes, regions)
        skipped.append(int(inside.sum()))
        return inside

    monkeypatch.setattr(training.ignore, "inside_ignore_regions", spy)
    assert main(["--config", str(config)]) == 0
    assert sum(skipped) > 0, "anchors or proposals inside the regions were skipped"
    assert main(["--config", str(config), "--resume", str(tmp_path / "run" / "last.pt"), "epochs=2"]) == 0
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (state["epoch"], state["iteration"]) == (1, 4)
    history = json.loads(state["history"])
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(np.isfinite(v) for r in history for v in r["losses"].values())


def test_pack_shrinks_images_and_boxes_alike_and_its_config_trains_with_loader_workers(tmp_path: Path) -> None:
    """training.pack: the folder a GPU run takes along; boxes and ignore regions scale with their image."""
    from core.config import load_config
    from detector.datasets import load_dataset

    data = write_coco(tmp_path / "data")
    coco = json.loads(data.read_text())
    coco["annotations"].append({"id": 9, "image_id": 0, "category_id": 1, "bbox": [100, 60, 40, 40], "iscrowd": 1})
    data.write_text(json.dumps(coco))
    config = write_config(tmp_path, data)
    original = load_dataset(f"coco:{data}").images
    assert main(["--config", str(config), "--pack", str(tmp_path / "packed"), "--short-side", "60"]) == 0

    packed_config = load_config(TrainConfig, tmp_path / "packed" / "train.yaml")
    assert packed_config.val == [] and packed_config.lr == 0.01 and len(packed_config.train) == 1
    packed = load_dataset(packed_config.train[0].spec).images
    assert [(im.width, im.height) for im in packed] == [(80, 60), (80, 60)]
    assert cv2.imread(str(packed[0].path)).shape == (60, 80, 3)
    for before, after in zip(original, packed):
        np.testing.assert_allclose(after.boxes, before.boxes * 0.5, atol=1e-4)
        np.testing.assert_allclose(after.ignore, before.ignore * 0.5, atol=1e-4)
        assert after.labels.tolist() == before.labels.tolist()
    assert len(packed[0].ignore) == 1

    assert main(["--config", str(tmp_path / "packed" / "train.yaml"), "--out", str(tmp_path / "run-packed"),
                 "workers=1", "max_iters=2", "train_min_sizes=[64]", "min_size=64", "max_size=80"]) == 0
    assert load_checkpoint(tmp_path / "run-packed" / "last.pt")["iteration"] == 2


@pytest.mark.parametrize("option", [["--quality", "0"], ["--short-side", "-5"]])
def test_pack_with_a_bad_setting_exits_2_and_writes_nothing(config: Path, tmp_path: Path, option: list[str],
                                                            capsys) -> None:
    assert main(["--config", str(config), "--pack", str(tmp_path / "packed"), *option]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "packed").exists()


def test_the_v5_config_adds_the_penn_fudan_people_and_keeps_its_val_third_apart():
    """Stage 5 (the bundled weights since 2026-12-04) fine-tunes stage 4 on its data plus two thirds of Penn-Fudan,
    distilled from stage 4; the Penn-Fudan val photos are never trained on."""
    from core.config import load_config
    from stream.config import CONFIG_DIR
    from training.train import TrainConfig

    v3 = load_config(TrainConfig, CONFIG_DIR / "train-driving-v3.yaml")
    v5 = load_config(TrainConfig, CONFIG_DIR / "train-driving-v5.yaml")
    stage4 = "detector/weights/driving_mobilenet_v2_fpn-v4.pt"
    assert v5.init_weights == v5.teacher == stage4 and v5.lr == v3.lr
    assert [(s.spec, s.split) for s in v5.train[:4]] == [(s.spec, s.split) for s in v3.train]
    penn = v5.train[4]
    assert penn.spec == "coco:../shared/data/pennfudan/train.json" and penn.repeat == 3
    splits = {kind: set((CONFIG_DIR / "splits" / f"pennfudan-{kind}.txt").read_text().split())
              for kind in ("train", "val")}
    assert penn.split == "configs/splits/pennfudan-train.txt" and splits["train"] and splits["val"]
    assert not splits["train"] & splits["val"]


def test_the_second_lite_config_continues_the_first_on_the_same_data_and_teacher():
    """The light model's second run (the bundled light weights) starts from the first run's weights and changes the
    schedule, the sampling seed and how often an epoch shows the Penn-Fudan photos, nothing else."""
    from core.config import load_config
    from stream.config import CONFIG_DIR
    from training.train import TrainConfig

    first = load_config(TrainConfig, CONFIG_DIR / "train-driving-lite.yaml")
    second = load_config(TrainConfig, CONFIG_DIR / "train-driving-lite-2.yaml")
    assert second.init_weights == "detector/weights/driving_mobilenet_v2_lite-1.pt" and not first.init_weights
    assert (second.model, second.teacher, second.frozen_stages) == (first.model, first.teacher, first.frozen_stages)
    assert [(s.spec, s.split) for s in second.train] == [(s.spec, s.split) for s in first.train]
    repeats = {s.spec: (f.repeat, s.repeat) for f, s in zip(first.train, second.train) if f.repeat != s.repeat}
    assert repeats == {"coco:../shared/data/pennfudan/train.json": (3, 5)}
    assert second.lr < first.lr and second.seed != first.seed and second.out_dir != first.out_dir


def test_pack_options_without_pack_exit_2(config: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(config), "--quality", "80"])
    assert stop.value.code == 2 and "go with --pack" in capsys.readouterr().err
