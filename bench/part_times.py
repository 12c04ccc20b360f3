"""Where a frame's inference time goes, per part of the detector: OpenVINO's per-node counters (``PERF_COUNT``) of the
exported graph, summed by the module each node came from, on one thread. FLOPs (`driving-detect benchmark --flops`)
say what an architecture asks for; this says what the CPU makes of each part (docs/MODEL_CARD.md, "Where a frame's
time goes": a depthwise convolution is cheap in FLOPs and slow per FLOP).

    python -m bench.part_times [--source CLIP] [--models NAME,...] [--sizes 568x320,1296x729] [--precision int8]
        [--runs 10]

``--sizes`` are the model's input sizes (the frame is fitted to each, as the pipeline does). Each model runs every
size ``--runs`` times after 2 warm-up runs; the table gives the mean milliseconds a frame per part.
"""
from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bench.benchmark import decode
from bench.clips import parse_sizes, size_pair
from bench.machine import cpu_description, load_average
from detector.config import BUNDLED_MODEL, LITE_MODEL, ModelConfig
from stream.sources import SourceError

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "driving_sample.mp4"
# Node-name prefixes of the exported torchvision Faster R-CNN, most specific first: the graph names each node after
# the module that made it (`/model/backbone/fpn/...`).
PARTS = (("/model/backbone/body/", "body"), ("/model/backbone/fpn/", "fpn"), ("/model/rpn/head/", "rpn head"),
         ("/model/rpn/", "proposals"), ("/model/roi_heads/box_roi_pool/", "roi align"),
         ("/model/roi_heads/", "box head + boxes"))
OTHER = "other"
COLUMNS = (*(name for _, name in PARTS), OTHER, "total")


def part_of(node_name: str) -> str:
    """The detector part a graph node belongs to (`PARTS`), else ``other`` (input layout, resizing glue, outputs)."""
    return next((name for prefix, name in PARTS if node_name.startswith(prefix)), OTHER)


def sum_parts(node_times: Iterable[tuple[str, float]]) -> dict[str, float]:
    """(node name, ms) pairs -> ms per part and ``total``, every column of `COLUMNS` present."""
    totals = Counter({column: 0.0 for column in COLUMNS})
    for name, ms in node_times:
        totals[part_of(name)] += ms
        totals["total"] += ms
    return dict(totals)


def profile(model: str, precision: str, width: int, height: int, frame: np.ndarray,
            runs: int) -> dict[str, float]:
    """Mean ms per part of ``runs`` inferences of ``frame`` fitted to ``width`` x ``height``: one OpenVINO thread,
    compiled as a one-worker pipeline's backend is (`compile_properties`)."""
    import openvino as ov

    from detector.backend_openvino import compile_properties
    from detector.export_cache import cached_graph
    from detector.graph import read_metadata

    cfg = ModelConfig(name=model, backend="openvino", precision=precision, min_size=height, max_size=width, workers=1,
                      threads=1)
    path = cached_graph(cfg, precision)
    compiled = ov.Core().compile_model(str(path), "CPU", {**compile_properties(cfg, precision), "PERF_COUNT": "YES"})
    image = np.ascontiguousarray(read_metadata(path).fit(frame)[0])
    request = compiled.create_infer_request()
    for _ in range(2):
        request.infer({0: image})
    runs_parts = []
    for _ in range(runs):
        request.infer({0: image})
        runs_parts.append(sum_parts((p.node_name, p.real_time.total_seconds() * 1000) for p in request.profiling_info))
    return {column: sum(parts[column] for parts in runs_parts) / runs for column in COLUMNS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SAMPLE), help="video whose first frame is timed (default: the sample)")
    parser.add_argument("--models", default=f"{BUNDLED_MODEL},{LITE_MODEL}", help="comma-separated model names")
    parser.add_argument("--sizes", default="568x320,1296x729", help="model input sizes WxH, comma-separated")
    parser.add_argument("--precision", default="int8", choices=("int8", "fp32"))
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as exc:
        parser.exit(2, f"error: --sizes: {exc}\n")
    if args.runs < 1:
        parser.exit(2, "error: --runs must be 1 or more\n")
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # graphs not yet cached are exported first
    try:
        frame = decode(args.source, 1)[0]
    except SourceError:
        parser.exit(2, f"error: cannot read a frame from {args.source}\n")
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}, {cpu['cpus']} CPUs, SIMD flags: {cpu['simd_flags']}; load {load_average()}")
    print(f"{'model':>28} {'input':>9} " + " ".join(f"{column:>16}" for column in COLUMNS))
    for model in args.models.split(","):
        for size in sizes:
            width, height = size_pair(size)
            ms = profile(model, args.precision, width, height, frame, args.runs)
            print(f"{model:>28} {width}x{height:<4} " + " ".join(f"{ms[column]:>16.2f}" for column in COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
