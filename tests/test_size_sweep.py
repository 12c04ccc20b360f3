"""The AP-against-input-size sweep: every val set scored at every size, and the figure written."""
from __future__ import annotations

from bench.size_sweep import plot, sweep
from tests.conftest import RANDOM_MODEL, write_tiny_voc


def test_every_set_is_scored_at_every_size_and_plotted(tmp_path):
    voc = write_tiny_voc(tmp_path / "voc")
    sets = (("cars", f"voc:{voc}", None, ("car",)), ("signs", f"voc:{voc}", None, ("stop_sign", "speed_limit")))
    results = sweep([0, 64], RANDOM_MODEL, sets)
    assert set(results) == {"cars", "signs"} and all(set(r) == {"policy", "64"} for r in results.values())
    assert all(0.0 <= ap <= 1.0 for r in results.values() for ap in r.values())
    plot(results, "tiny", tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
