"""The one label map of the project: driving class ids and names, and how other label sets map onto them."""
from __future__ import annotations

LABELS: tuple[str, ...] = (
    "background",
    "car",
    "truck",
    "bus",
    "motorcycle",
    "bicycle",
    "person",
    "traffic_light",
    "stop_sign",
    "speed_limit",
    "crosswalk_sign",
)
NUM_CLASSES = len(LABELS)
LABEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

# Classes one object can be mistaken between (a lorry as truck or bus): the tracker never passes an id from one
# group to another, and the pipeline's NMS stage suppresses across the classes of a group as within one class.
CLASS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("car", "truck", "bus"), ("motorcycle", "bicycle"), ("person",), ("traffic_light",),
    ("stop_sign", "speed_limit", "crosswalk_sign"),
)
# class id -> its index in CLASS_GROUPS (-1: background)
GROUP_IDS: tuple[int, ...] = tuple(next((g for g, names in enumerate(CLASS_GROUPS) if name in names), -1)
                                   for name in LABELS)

# Classes that are small in HD frames: found at the input-size policy's full size only, so a detector frame run at
# the base size (``model.full_size_every``) keeps their tracks' boxes, moved by flow, instead of its own detections.
SMALL_CLASSES: tuple[str, ...] = ("traffic_light", "stop_sign", "speed_limit", "crosswalk_sign")

# The default class filter of the NMS stage: the classes a COCO model and the bundled model share with driving.
DRIVING_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "bus", "truck", "traffic_light", "stop_sign",
    "speed_limit", "crosswalk_sign",
)

# Source-dataset names (COCO, Pascal VOC road signs, KITTI) -> driving names; unmapped names are dropped.
DEFAULT_MAPPING: dict[str, str] = {
    "car": "car", "truck": "truck", "bus": "bus", "motorcycle": "motorcycle", "motorbike": "motorcycle",
    "bicycle": "bicycle", "person": "person", "traffic light": "traffic_light", "traffic_light": "traffic_light",
    "trafficlight": "traffic_light", "stop sign": "stop_sign", "stop_sign": "stop_sign", "stop": "stop_sign",
    "speedlimit": "speed_limit", "speed_limit": "speed_limit", "crosswalk": "crosswalk_sign",
    "crosswalk_sign": "crosswalk_sign",
    "Car": "car", "Van": "car", "Truck": "truck", "Pedestrian": "person", "Person_sitting": "person",
    "Cyclist": "bicycle",
}

# torchvision's COCO category list (91 entries, "N/A" for unused ids), as its detection weights index it.
COCO_CATEGORIES: tuple[str, ...] = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet",
    "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


def coco_to_driving() -> dict[int, int]:
    """COCO category index -> driving class id, for the classes the two sets share."""
    return {
        i: LABEL_IDS[DEFAULT_MAPPING[name]]
        for i, name in enumerate(COCO_CATEGORIES)
        if name in DEFAULT_MAPPING
    }


def label_id(name: str) -> int:
    """Driving class id for a driving class name; a clear error lists the valid names."""
    try:
        return LABEL_IDS[name]
    except KeyError:
        raise ValueError(f"unknown class '{name}'; valid classes: {', '.join(LABELS[1:])}") from None
