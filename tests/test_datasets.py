"""Dataset readers on tiny generated fixtures (VOC, KITTI, COCO, YOLO), bad annotations, and the shared data."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.labels import LABEL_IDS, LABELS
from detector.datasets import DatasetError, load_dataset

W, H = 64, 48


def write_image(path: Path, width: int = W, height: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))


def voc_xml(stem: str, objects: list[tuple[str, list[float], int]]) -> str:
    body = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, difficult in objects
    )
    return (f"<annotation><filename>{stem}.jpg</filename><size><width>{W}</width><height>{H}</height>"
            f"<depth>3</depth></size>{body}</annotation>")


def write_voc(root: Path, annotations: dict[str, list[tuple[str, list[float], int]] | str]) -> Path:
    """stem -> objects (name, xyxy, difficult), or raw XML text for broken files."""
    (root / "annotations").mkdir(parents=True)
    for stem, objects in annotations.items():
        write_image(root / "images" / f"{stem}.jpg")
        text = objects if isinstance(objects, str) else voc_xml(stem, objects)
        (root / "annotations" / f"{stem}.xml").write_text(text)
    return root


def ids(*names: str) -> list[int]:
    return [LABEL_IDS[n] for n in names]


def test_voc_maps_names_and_difficult_to_ignore(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {
        "a": [("stop", [1, 2, 30, 40], 0), ("trafficlight", [40, 5, 50, 25], 0), ("speedlimit", [5, 5, 9, 9], 1)],
        "b": [("crosswalk", [0, 0, 64, 48], 0)],
    })
    dataset = load_dataset(f"voc:{root}")
    a, b = dataset.images
    assert a.path == root / "images" / "a.jpg" and (a.width, a.height) == (W, H)
    np.testing.assert_array_equal(a.boxes, [[1, 2, 30, 40], [40, 5, 50, 25]])
    assert a.labels.tolist() == ids("stop_sign", "traffic_light")
    np.testing.assert_array_equal(a.ignore, [[5, 5, 9, 9]])
    assert b.labels.tolist() == ids("crosswalk_sign") and dataset.skipped == 0


def test_voc_split_and_custom_mapping(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {
        "a": [("Sign", [1, 1, 10, 10], 0)], "b": [("Sign", [2, 2, 20, 20], 0), ("stop", [30, 3, 40, 13], 0)],
    })
    split = tmp_path / "split.txt"
    split.write_text("b\n")
    with pytest.raises(DatasetError, match="unknown class 'Sign'"):
        load_dataset(f"voc:{root}", split)
    (image,) = load_dataset(f"voc:{root}", split, mapping={"Sign": "speed_limit", "stop": None}).images
    assert image.path.stem == "b"
    assert image.labels.tolist() == ids("speed_limit") and image.boxes.tolist() == [[2, 2, 20, 20]]


def test_kitti_dontcare_becomes_ignore(tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    write_image(root / "image_2" / "000000.png")
    (root / "label_2").mkdir()
    (root / "label_2" / "000000.txt").write_text(
        "Car 0.00 0 -1.57 10.0 12.5 40.0 30.0 1.5 1.6 3.9 1.0 1.0 10.0 0.0\n"
        "Van 0.00 0 0.10 2.0 3.0 8.0 9.0 2.0 1.8 4.5 -3.0 1.0 20.0 0.1\n"
        "Cyclist 0.30 1 0.20 45.0 10.0 55.0 40.0 1.7 0.6 1.8 2.0 1.0 8.0 0.2\n"
        "Misc 0.00 0 0.00 1.0 1.0 5.0 5.0 1.0 1.0 1.0 0.0 0.0 5.0 0.0\n"
        "DontCare -1 -1 -10 50.0 30.0 63.0 47.0 -1 -1 -1 -1000 -1000 -1000 -10\n"
    )
    (image,) = load_dataset(f"kitti:{root}").images
    assert (image.width, image.height) == (W, H)
    assert image.labels.tolist() == ids("car", "car", "bicycle")  # Misc dropped
    np.testing.assert_allclose(image.boxes[0], [10.0, 12.5, 40.0, 30.0])
    np.testing.assert_allclose(image.ignore, [[50.0, 30.0, 63.0, 47.0]])


def test_coco_converts_xywh_and_crowd_to_ignore(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_image(root / "images" / "f1.jpg")
    write_image(root / "images" / "f2.jpg")
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 3, "bbox": [4, 5, 10, 20], "area": 200, "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 1, "bbox": [20, 0, 30, 40], "area": 1200, "iscrowd": 1},
        {"id": 3, "image_id": 7, "category_id": 5, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},
        {"id": 4, "image_id": 8, "category_id": 10, "bbox": [30, 10, 6, 12], "area": 72, "iscrowd": 0},
    ]
    (root / "ann.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "f1.jpg", "width": W, "height": H},
                   {"id": 8, "file_name": "f2.jpg", "width": W, "height": H},
                   {"id": 9, "file_name": "f2.jpg", "width": W, "height": H}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 5, "name": "airplane"},
                       {"id": 10, "name": "traffic light"}],
    }))
    first, second, empty = load_dataset(f"coco:{root / 'ann.json'}").images
    assert first.path == root / "images" / "f1.jpg"
    assert first.boxes.tolist() == [[4, 5, 14, 25]] and first.labels.tolist() == ids("car")  # airplane dropped
    assert first.ignore.tolist() == [[20, 0, 50, 40]]
    assert second.labels.tolist() == ids("traffic_light") and second.boxes.tolist() == [[30, 10, 36, 22]]
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)


def test_coco_min_teacher_score_drops_only_low_teacher_boxes(tmp_path: Path) -> None:
    """Teacher boxes (``source: teacher``, or a ``score`` without ``source``) below the floor go; human ones stay."""
    root = tmp_path / "coco"
    write_image(root / "images" / "f.jpg")
    boxes = [
        ({"source": "human"}, [1, 1, 4, 4]),
        ({"source": "teacher", "score": 0.35}, [2, 2, 4, 4]),        # dropped at 0.5
        ({"source": "teacher", "score": 0.8}, [3, 3, 4, 4]),
        ({"score": 0.31}, [4, 4, 4, 4]),                             # pseudo/*.json style teacher box: dropped
        ({"score": 0.9}, [5, 5, 4, 4]),
        ({"source": "human", "score": 0.1}, [6, 6, 4, 4]),           # human: a score does not make it teacher
        ({}, [7, 7, 4, 4]),                                          # no source, no score: kept
    ]
    annotations = [{"id": i, "image_id": 1, "category_id": 3, "bbox": bbox, "iscrowd": 0, **extra}
                   for i, (extra, bbox) in enumerate(boxes, 1)]
    path = root / "ann.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "f.jpg", "width": W, "height": H}],
                                "annotations": annotations, "categories": [{"id": 3, "name": "car"}]}))
    (every,) = load_dataset(f"coco:{path}").images
    assert every.boxes[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    (kept,) = load_dataset(f"coco:{path}", min_teacher_score=0.5).images
    assert kept.boxes[:, 0].tolist() == [1, 3, 5, 6, 7] and kept.labels.tolist() == ids("car") * 5
    (none_left,) = load_dataset(f"coco:{path}", min_teacher_score=1.0).images
    assert none_left.boxes[:, 0].tolist() == [1, 6, 7]


def test_yolo_denormalises_boxes(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_image(root / "images" / "x.jpg")
    (root / "classes.txt").write_text("car\nstop sign\n")
    (root / "labels").mkdir()
    (root / "labels" / "x.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.125 0.25 0.25 0.5\n")
    (image,) = load_dataset(f"yolo:{root}").images
    assert image.labels.tolist() == ids("car", "stop_sign")
    np.testing.assert_allclose(image.boxes, [[24, 12, 40, 36], [0, 0, 16, 24]])


@pytest.mark.parametrize("bad, message", [
    ([("stop", [10, 10, 90, 20], 0)], "outside the 64x48 image"),
    ([("giraffe-ish", [1, 1, 5, 5], 0)], "unknown class 'giraffe-ish'"),
    ("<annotation><size>", "unreadable annotation"),
])
def test_bad_annotation_names_file_or_is_skipped(tmp_path: Path, bad, message: str) -> None:
    root = write_voc(tmp_path / "voc", {"good": [("stop", [1, 1, 10, 10], 0)], "broken": bad})
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(f"voc:{root}")
    assert str(root / "annotations" / "broken.xml") in str(caught.value)
    dataset = load_dataset(f"voc:{root}", skip_bad=True)
    assert dataset.skipped == 1 and [i.path.stem for i in dataset.images] == ["good"]


def test_bad_kitti_line_and_dataset_spec(tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    write_image(root / "image_2" / "1.png")
    (root / "label_2").mkdir()
    (root / "label_2" / "1.txt").write_text("Car 0 0 0 ten 1 5 5\n")
    with pytest.raises(DatasetError, match=r"1\.txt: unreadable annotation"):
        load_dataset(f"kitti:{root}")
    assert load_dataset(f"kitti:{root}", skip_bad=True).skipped == 1
    with pytest.raises(DatasetError, match="FORMAT:PATH"):
        load_dataset(f"pascal:{root}")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"voc:{tmp_path / 'missing'}")


def class_counts(images) -> Counter:
    return Counter(LABELS[i] for im in images for i in im.labels.tolist())


def test_shared_data_counts(shared_data: Path) -> None:
    signs = load_dataset(f"voc:{shared_data / 'roadsigns'}", shared_data / "roadsigns" / "val.txt").images
    assert len(signs) == 175 and sum(len(i.boxes) for i in signs) == 255
    assert class_counts(signs) == {"traffic_light": 27, "stop_sign": 19, "speed_limit": 161, "crosswalk_sign": 48}
    pseudo = load_dataset(f"coco:{shared_data / 'pseudo' / 'val.json'}").images
    assert len(pseudo) == 213 and sum(len(i.boxes) for i in pseudo) == 588
    assert sum(len(i.boxes) == 0 for i in pseudo) == 20
    assert class_counts(pseudo) == {"car": 539, "truck": 25, "bus": 17, "person": 6, "traffic_light": 1}
    assert all(i.path.exists() for i in pseudo[:5] + signs[:5])
