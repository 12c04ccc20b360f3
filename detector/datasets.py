"""Dataset readers (Pascal VOC XML, KITTI label_2, COCO JSON, YOLO txt) onto the driving label set, and one writer.

Each reader returns `AnnotatedImage`s; names map through a mapping (source name -> driving name, or None to
drop). Ignore regions (KITTI DontCare, VOC difficult, COCO iscrowd) are kept apart so evaluation can skip them.
`write_coco` writes derived sets (crops, packed copies) as COCO JSON in driving names, which `read_coco` reads back.
"""
from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.images import IMAGE_SUFFIXES, read_bgr
from core.labels import COCO_CATEGORIES, DEFAULT_MAPPING, LABEL_IDS, LABELS

log = logging.getLogger(__name__)
FORMATS = ("voc", "kitti", "coco", "yolo")
IGNORE = "__ignore__"


class DatasetError(ValueError):
    """An annotation that cannot be used; the message names the file."""


@dataclass
class AnnotatedImage:
    """One labelled image. boxes (N, 4) and ignore (M, 4) are float32 xyxy pixels; labels (N,) driving ids."""

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


@dataclass
class DataSource:
    """A dataset as ``FORMAT:PATH``, an optional split file of stems, and how many times an epoch shows it."""

    spec: str
    split: str | None = None
    repeat: int = 1

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError(f"repeat for '{self.spec}' must be >= 1, got {self.repeat}")


@dataclass
class Dataset:
    """The images a reader produced and how many bad annotations it skipped."""

    images: list[AnnotatedImage]
    skipped: int = 0


def default_mapping() -> dict[str, str | None]:
    """The project's mapping: driving synonyms, KITTI DontCare as ignore, every other COCO/KITTI name dropped."""
    mapping: dict[str, str | None] = {name: None for name in COCO_CATEGORIES}
    mapping.update({"Tram": None, "Misc": None, "DontCare": IGNORE})
    mapping.update(DEFAULT_MAPPING)
    return mapping


class _Builder:
    """Collects boxes for one image, validating them against the image size and the mapping."""

    def __init__(self, source: Path, width: int, height: int, mapping: dict[str, str | None]):
        self.source, self.width, self.height, self.mapping = source, width, height, mapping
        self.boxes: list[list[float]] = []
        self.labels: list[int] = []
        self.ignore: list[list[float]] = []

    def add(self, name: str, box: list[float], ignore: bool = False) -> None:
        if name not in self.mapping:
            raise DatasetError(f"{self.source}: unknown class '{name}' (add it to the label mapping)")
        target = self.mapping[name]
        if target is None:
            return
        x1, y1, x2, y2 = box
        tol = 1.0
        if not (-tol <= x1 < x2 <= self.width + tol and -tol <= y1 < y2 <= self.height + tol):
            raise DatasetError(f"{self.source}: box {box} lies outside the {self.width}x{self.height} image")
        box = [max(0.0, x1), max(0.0, y1), min(float(self.width), x2), min(float(self.height), y2)]
        if ignore or target == IGNORE:
            self.ignore.append(box)
        else:
            if target not in LABEL_IDS:
                raise DatasetError(f"{self.source}: class '{name}' maps to '{target}', not a driving class")
            self.boxes.append(box)
            self.labels.append(LABEL_IDS[target])

    def build(self, image: Path) -> AnnotatedImage:
        return AnnotatedImage(
            image, self.width, self.height,
            np.asarray(self.boxes, np.float32).reshape(-1, 4),
            np.asarray(self.labels, np.int64),
            np.asarray(self.ignore, np.float32).reshape(-1, 4),
        )


def _image_size(path: Path) -> tuple[int, int]:
    image = read_bgr(path) if path.exists() else None
    if image is None:
        raise DatasetError(f"{path}: image missing or unreadable")
    return image.shape[1], image.shape[0]


def _find_image(folder: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        if (candidate := folder / f"{stem}{suffix}").exists():
            return candidate
    raise DatasetError(f"{folder / stem}.*: no image for this annotation")


def _read_split(split: Path | None) -> list[str] | None:
    if split is None:
        return None
    try:
        return [line.strip() for line in Path(split).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DatasetError(f"{split}: cannot read split file ({exc.strerror})") from None


def _collect(items: list, read_one: Callable, skip_bad: bool) -> Dataset:
    images, skipped = [], 0
    for item in items:
        try:
            images.append(read_one(item))
        except DatasetError as exc:
            if not skip_bad:
                raise
            skipped += 1
            log.warning("skipped: %s", exc)
    return Dataset(images, skipped)


def read_voc(root: Path, split: Path | None, mapping: dict, skip_bad: bool = False) -> Dataset:
    """``root/annotations/*.xml`` + ``root/images`` (or VOC's Annotations/JPEGImages). difficult -> ignore."""
    ann_dir = root / "Annotations" if (root / "Annotations").is_dir() else root / "annotations"
    img_dir = root / "JPEGImages" if (root / "JPEGImages").is_dir() else root / "images"
    stems = _read_split(split)
    stems = sorted(p.stem for p in ann_dir.glob("*.xml")) if stems is None else stems

    def read_one(stem: str) -> AnnotatedImage:
        xml_path = ann_dir / f"{stem}.xml"
        try:
            tree = ET.parse(xml_path).getroot()
            filename = tree.findtext("filename")
            image = img_dir / filename if filename and (img_dir / filename).exists() else _find_image(img_dir, stem)
            size = tree.find("size")
            width, height = int(size.findtext("width")), int(size.findtext("height"))
            builder = _Builder(xml_path, width, height, mapping)
            for obj in tree.iter("object"):
                bb = obj.find("bndbox")
                box = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                builder.add(obj.findtext("name", "").strip(), box, obj.findtext("difficult", "0").strip() == "1")
        except (OSError, ET.ParseError, AttributeError, TypeError, ValueError) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{xml_path}: unreadable annotation ({exc})") from None
        return builder.build(image)

    return _collect(stems, read_one, skip_bad)


def _read_text_labels(
    label_dir: Path, img_dir: Path, split: Path | None, mapping: dict, skip_bad: bool,
    parse_line: Callable[[list[str], _Builder], None],
) -> Dataset:
    """One ``.txt`` of whitespace-separated fields per image (KITTI, YOLO); ``parse_line`` adds one box."""
    stems = _read_split(split)
    stems = sorted(p.stem for p in label_dir.glob("*.txt")) if stems is None else stems

    def read_one(stem: str) -> AnnotatedImage:
        path = label_dir / f"{stem}.txt"
        image = _find_image(img_dir, stem)
        builder = _Builder(path, *_image_size(image), mapping)
        try:
            for line in path.read_text().splitlines():
                if line.split():
                    parse_line(line.split(), builder)
        except (OSError, ValueError, IndexError) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{path}: unreadable annotation ({exc})") from None
        return builder.build(image)

    return _collect(stems, read_one, skip_bad)


def read_kitti(root: Path, split: Path | None, mapping: dict, skip_bad: bool = False) -> Dataset:
    """KITTI object layout: ``root/label_2/*.txt`` + ``root/image_2``; DontCare boxes become ignore regions."""

    def parse(fields: list[str], builder: _Builder) -> None:
        builder.add(fields[0], [float(v) for v in fields[4:8]])

    return _read_text_labels(root / "label_2", root / "image_2", split, mapping, skip_bad, parse)


def is_teacher_box(ann: dict) -> bool:
    """A machine label: ``source`` is ``teacher``, or there is no ``source`` but a ``score`` (``pseudo/*.json``)."""
    source = ann.get("source")
    return source == "teacher" if source is not None else "score" in ann


def read_coco(
    path: Path, split: Path | None, mapping: dict, skip_bad: bool = False, min_teacher_score: float = 0.0,
    ignore_below_score: float = 0.0,
) -> Dataset:
    """COCO JSON; images are found beside it in ``images/`` (or beside the JSON itself). iscrowd -> ignore.

    ``min_teacher_score`` drops teacher boxes (`is_teacher_box`) scoring below it; the teacher boxes left that
    score below ``ignore_below_score`` become ignore regions: a weak teacher box is too unsure to teach as an
    object, but dropping it would teach what is often a real object as background. Human boxes always stay.
    Meant for training only: evaluation should read every label.
    """
    try:
        coco = json.loads(path.read_text())
        categories = {c["id"]: c["name"] for c in coco["categories"]}
        records = coco["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not a readable COCO JSON ({exc})") from None
    img_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    by_image: dict[int, list[dict]] = {}
    dropped = ignored = 0
    for ann in coco.get("annotations", []):
        score = float(ann.get("score", 0.0)) if is_teacher_box(ann) else 1.0
        if score < min_teacher_score:
            dropped += 1
            continue
        if score < ignore_below_score:
            ann = {**ann, "iscrowd": 1}  # COCO's own mark of an ignore region
            ignored += 1
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    if min_teacher_score > 0:
        log.info("%s: %d teacher boxes below score %.2f dropped", path, dropped, min_teacher_score)
    if ignore_below_score > 0:
        log.info("%s: %d teacher boxes below score %.2f made ignore regions", path, ignored, ignore_below_score)
    keep = _read_split(split)
    if keep is not None:
        wanted = set(keep)
        records = [r for r in records if Path(r["file_name"]).stem in wanted or r["file_name"] in wanted]

    def read_one(record: dict) -> AnnotatedImage:
        source = Path(f"{path}#{record.get('file_name', record.get('id'))}")
        try:
            builder = _Builder(source, int(record["width"]), int(record["height"]), mapping)
            for ann in by_image.get(record["id"], []):
                if ann["category_id"] not in categories:
                    raise DatasetError(f"{source}: unknown category id {ann['category_id']}")
                x, y, w, h = ann["bbox"]
                builder.add(categories[ann["category_id"]], [x, y, x + w, y + h], bool(ann.get("iscrowd", 0)))
            return builder.build(img_dir / record["file_name"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{source}: malformed COCO record ({type(exc).__name__}: {exc})") from None

    return _collect(records, read_one, skip_bad)


def read_yolo(root: Path, split: Path | None, mapping: dict, skip_bad: bool = False) -> Dataset:
    """YOLO txt: ``root/images``, ``root/labels`` (class cx cy w h, normalised); names in ``root/classes.txt``."""
    names_file = root / "classes.txt"
    try:
        names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
    except OSError:
        raise DatasetError(f"{names_file}: YOLO class names file missing") from None

    def parse(fields: list[str], builder: _Builder) -> None:
        cls, cx, cy, w, h = fields[:5]
        if not 0 <= int(cls) < len(names):
            raise DatasetError(f"{builder.source}: class index {cls} not in {names_file}")
        cx, cy = float(cx) * builder.width, float(cy) * builder.height
        w, h = float(w) * builder.width, float(h) * builder.height
        builder.add(names[int(cls)], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    return _read_text_labels(root / "labels", root / "images", split, mapping, skip_bad, parse)


def write_coco(path: Path, images: list[AnnotatedImage]) -> None:
    """``images`` as a COCO JSON at ``path`` in driving class names, each image named by its file name (so the
    files belong in ``images/`` beside the JSON, where `read_coco` looks); ignore regions as ``iscrowd`` boxes."""
    records, annotations = [], []
    for index, item in enumerate(images):
        records.append({"id": index, "file_name": item.path.name, "width": item.width, "height": item.height})
        boxes = [(box, int(label), 0) for box, label in zip(item.boxes, item.labels)]
        boxes += [(box, LABEL_IDS["car"], 1) for box in item.ignore]  # any mapped class: read as an ignore region
        for box, category, crowd in boxes:
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": category,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                "iscrowd": crowd})
    categories = [{"id": i, "name": name} for i, name in enumerate(LABELS) if i]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": records, "annotations": annotations, "categories": categories}))


READERS = {"voc": read_voc, "kitti": read_kitti, "coco": read_coco, "yolo": read_yolo}


def load_dataset(
    spec: str, split: str | Path | None = None, mapping: dict | None = None, skip_bad: bool = False,
    min_teacher_score: float = 0.0, ignore_below_score: float = 0.0,
) -> Dataset:
    """Read ``FORMAT:PATH`` (e.g. ``voc:../shared/data/roadsigns``) with an optional split file of stems.

    ``min_teacher_score`` and ``ignore_below_score`` (COCO only; the other formats carry no teacher scores) drop
    low-score teacher boxes or make them ignore regions (`read_coco`).
    """
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in READERS:
        raise DatasetError(f"dataset '{spec}' must be FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}")
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: dataset path does not exist")
    full_mapping = default_mapping()
    full_mapping.update(mapping or {})
    scores = {"min_teacher_score": min_teacher_score, "ignore_below_score": ignore_below_score}
    extra = {k: v for k, v in scores.items() if v > 0} if fmt == "coco" else {}
    dataset = READERS[fmt](root, Path(split) if split else None, full_mapping, skip_bad, **extra)
    log.info("%s: %d images, %d boxes, %d ignore regions, %d skipped", spec, len(dataset.images),
             sum(len(i.boxes) for i in dataset.images), sum(len(i.ignore) for i in dataset.images), dataset.skipped)
    return dataset
