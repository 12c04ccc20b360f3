"""bench.part_times: graph nodes land in the detector part they came from, and a real graph's time is split across
the parts, not left in ``other`` (timings themselves are not asserted)."""
from __future__ import annotations

import pytest

from bench.part_times import COLUMNS, main, part_of, sum_parts
from detector.config import LITE_MODEL
from tests.conftest import write_video


@pytest.mark.parametrize(("node", "part"), [
    ("/model/backbone/body/body.5/conv/conv.0/Conv", "body"),
    ("/model/backbone/fpn/layer_blocks.0/layer_blocks.0.1/Conv", "fpn"),
    ("/model/rpn/head/conv/conv.0/conv.0.0_2/Conv", "rpn head"),
    ("/model/rpn/anchor_generator/Concat", "proposals"),
    ("/model/roi_heads/box_roi_pool/thin_1/Conv", "roi align"),
    ("/model/roi_heads/box_head/fc6/Gemm", "box head + boxes"),
    ("/model/transform/Pad", "other"),
    ("If_1807", "other"),
])
def test_each_node_counts_for_the_module_that_made_it(node: str, part: str) -> None:
    assert part_of(node) == part


def test_parts_add_up_to_the_total() -> None:
    parts = sum_parts([("/model/backbone/body/a", 2.0), ("/model/backbone/body/b", 1.5), ("/model/rpn/x", 0.5),
                       ("Transpose", 1.0)])
    assert set(parts) == set(COLUMNS)
    assert (parts["body"], parts["proposals"], parts["other"]) == (3.5, 0.5, 1.0)
    assert (parts["fpn"], parts["total"]) == (0.0, 5.0)


def test_a_real_graph_splits_its_time_across_the_parts(tmp_path, capsys) -> None:
    clip = write_video(tmp_path / "clip.avi", frames=2)
    assert main(["--source", str(clip), "--models", LITE_MODEL, "--sizes", "192x108", "--precision", "fp32",
                 "--runs", "1"]) == 0
    row = next(cells for cells in map(str.split, capsys.readouterr().out.splitlines()) if cells[:1] == [LITE_MODEL])
    values = dict(zip(COLUMNS, map(float, row[2:]), strict=True))
    assert values["body"] > 0 and values["fpn"] > 0 and values["rpn head"] > 0 and values["roi align"] > 0
    assert sum(values[c] for c in COLUMNS if c != "total") == pytest.approx(values["total"], abs=0.05)
    assert values["other"] < values["total"] / 2


def test_an_unreadable_source_is_one_error_line(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--source", str(tmp_path / "none.mp4")])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: cannot read a frame from {tmp_path / 'none.mp4'}"
