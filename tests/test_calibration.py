"""Calibration frames for static int8: equal shares per source, evenly spread; missing data means no int8."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from commands.export import main as export_main
from detector.calibration import (
    DEFAULT_CALIBRATION,
    CalibrationError,
    calibration_missing,
    calibration_paths,
    fingerprint,
    read_frames,
)
from detector.config import ModelConfig
from detector.datasets import DataSource
from detector.runtime import probe_machine, resolve_runtime
from tests.conftest import REPO, write_tiny_voc


def image_folder(root: Path, count: int) -> DataSource:
    """A VOC set of ``count`` images, numbered in order."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for i in range(count):
        cv2.imwrite(str(root / "images" / f"{i:03d}.jpg"), np.full((24, 32, 3), i, np.uint8))
        (root / "annotations" / f"{i:03d}.xml").write_text(
            f"<annotation><filename>{i:03d}.jpg</filename><size><width>32</width><height>24</height>"
            "<depth>3</depth></size></annotation>")
    return DataSource(f"voc:{root}")


def test_each_source_gives_an_equal_share_spread_evenly_over_it(tmp_path):
    big, small = image_folder(tmp_path / "big", 100), image_folder(tmp_path / "small", 10)
    paths = calibration_paths([big, small], 6)
    assert [p.parent.parent.name for p in paths] == ["big"] * 3 + ["small"] * 3
    assert [p.stem for p in paths[:3]] == ["000", "050", "099"]  # first, middle, last: not the first 3 frames
    assert [p.stem for p in paths[3:]] == ["000", "004", "009"]
    frames = read_frames(paths)
    assert all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for f in frames)
    assert fingerprint(paths) == fingerprint(calibration_paths([big, small], 6))
    assert fingerprint(paths) != fingerprint(calibration_paths([big, small], 8))


def test_the_default_set_is_training_splits_never_val():
    for source in DEFAULT_CALIBRATION:
        assert "val" not in source.spec.rsplit("/", 1)[-1] and "val" not in (source.split or "")
        assert source.split is None or source.split.endswith("train.txt")


def test_missing_or_unreadable_data_is_named(tmp_path):
    split = tmp_path / "split.txt"
    assert calibration_missing([]) == "model.calibration lists no dataset"
    assert calibration_missing([DataSource(f"coco:{tmp_path}/none.json")]) == \
        f"calibration data '{tmp_path}/none.json' does not exist"
    voc = write_tiny_voc(tmp_path / "voc")
    assert calibration_missing([DataSource(f"voc:{voc}", str(split))]) == f"calibration split '{split}' does not exist"
    assert calibration_missing([DataSource(f"voc:{voc}")]) == ""
    (voc / "images" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CalibrationError, match="cannot be read"):
        read_frames(calibration_paths([DataSource(f"voc:{voc}")], 3))


def test_a_machine_without_the_calibration_data_is_not_offered_int8(tmp_path, caplog):
    cfg = ModelConfig(calibration=[DataSource(f"coco:{tmp_path}/none.json")], device="cpu")
    machine = probe_machine(cfg)
    assert "does not exist" in machine.no_calibration
    resolved = resolve_runtime(cfg)
    assert resolved.precision in ("fp32", "bf16") or resolved.backend == "torch"
    if resolved.backend == "openvino" and machine.cpu_int8:  # auto would have taken int8
        assert any("int8 is not offered" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_the_export_command_names_missing_calibration_data_and_exits_2(tmp_path, capsys):
    args = ["--model", "fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", "random", "--out",
            str(tmp_path / "m.onnx"), "--precision", "int8", "--calibration", f"voc:{tmp_path}/none"]
    assert export_main(args) == 2
    err = capsys.readouterr().err
    assert err == f"error: calibration data '{tmp_path}/none' does not exist\n"
    assert not (tmp_path / "m.onnx").exists()


def test_default_split_paths_are_relative_to_the_repository():
    assert (REPO / "configs" / "splits" / "gtsdb-train.txt").exists()
