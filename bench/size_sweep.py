"""AP@0.5 against the model's input size, per val set: the figure behind the input-size policy's default.

    python -m bench.size_sweep --out docs/eval/v3 [--sizes 0,256,320,400,480,560] [key=value ...]

Size 0 is the default policy (`detector.input_size`: short side ``320*(short/360)**0.75``); any other size is a
fixed short side (long side capped at 4x, which none of the val sets reach). Each val set is scored on the
metric it can speak for: cars on the dashcam frames, all four sign classes on the photos, speed-limit and stop
signs on the GTSDB hold-out. Writes ``size_sweep.json`` and ``size_sweep.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from matplotlib.figure import Figure

from core.config import parse_overrides
from core.log import setup_logging
from detector.backend import build_backend
from detector.datasets import load_dataset
from detector.nms import ClasswiseNms
from detector.runtime import resolve_workers
from evaluation.evaluate import evaluate_backend, evaluation_nms
from stream.config import load_pipeline_config

log = logging.getLogger(__name__)
# (label, dataset spec, split, classes whose AP@0.5 is reported; their mean is the line drawn)
VAL_SETS = (
    ("pseudo val: car (teacher labels)", "coco:../shared/data/pseudo/val.json", None, ("car",)),
    ("roadsigns val: sign mAP (human)", "voc:../shared/data/roadsigns", "../shared/data/roadsigns/val.txt",
     ("traffic_light", "stop_sign", "speed_limit", "crosswalk_sign")),
    ("GTSDB hold-out: speed_limit (human)", "coco:../shared/data/gtsdb/train.json", "configs/splits/gtsdb-val.txt",
     ("speed_limit",)),
    ("GTSDB hold-out: stop_sign (human)", "coco:../shared/data/gtsdb/train.json", "configs/splits/gtsdb-val.txt",
     ("stop_sign",)),
)


def sweep(sizes: list[int], overrides: list[str], val_sets: tuple = VAL_SETS) -> dict[str, dict[str, float]]:
    """{val-set label: {size label: AP@0.5}}, one backend build per size shared by every val set."""
    results: dict[str, dict[str, float]] = {label: {} for label, *_ in val_sets}
    datasets = {(spec, split): load_dataset(spec, split) for _, spec, split, _ in val_sets}
    for size in sizes:
        name = str(size or "policy")
        extra = [f"model.min_size={size}", f"model.max_size={4 * size}"] if size else []
        cfg = load_pipeline_config(None, [*overrides, *extra])
        model = resolve_workers(cfg.model)
        backend = build_backend(model)
        nms = ClasswiseNms(evaluation_nms(cfg.nms, overrides))
        reports = {key: evaluate_backend(backend, nms, dataset, workers=model.workers)
                   for key, dataset in datasets.items()}
        for label, spec, split, classes in val_sets:
            aps = reports[(spec, split)].to_json()["classes"]
            results[label][name] = round(sum(aps[c]["ap50"] if c in aps else 0.0 for c in classes) / len(classes), 4)
        log.info("size %s: %s", name, {label: by_size[name] for label, by_size in results.items()})
    return results


def plot(results: dict[str, dict[str, float]], title: str, path: Path) -> None:
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for label, by_size in results.items():
        fixed = [(int(s), ap) for s, ap in by_size.items() if s != "policy"]
        line, = ax.plot([s for s, _ in fixed], [ap for _, ap in fixed], marker="o", label=label)
        if "policy" in by_size:
            ax.axhline(by_size["policy"], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("fixed input short side (px); dashed: the default policy")
    ax.set_ylabel("AP@0.5")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.size_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for size_sweep.json and .png")
    parser.add_argument("--sizes", default="0,256,320,400,480,560", help="short sides; 0 is the policy")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        parse_overrides(args.overrides)
        results = sweep(sizes, args.overrides)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "size_sweep.json").write_text(json.dumps({"overrides": args.overrides, "ap50": results}, indent=1))
    title = "bundled model, AP@0.5 against input size" + (f" ({' '.join(args.overrides)})" if args.overrides else "")
    plot(results, title, args.out / "size_sweep.png")
    for label, by_size in results.items():
        print(f"{label:40s} " + "  ".join(f"{s}: {ap:.3f}" for s, ap in by_size.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
