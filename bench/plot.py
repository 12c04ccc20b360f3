"""Plot runs from the shared benchmark log (the CSV that `write_record` appends to) into one PNG.

Panels: FPS per setting (source and its resolution, kind, model, top-N, variant: median over its runs, min-max
bars, backends side by side), per-stage mean ms per run,
end-to-end latency p50/p95 per run, and for tune rows FPS against mAP@0.5. Rows of different kinds carry
different columns, so each panel uses the rows that have its columns and is left out when none do. The command
is ``driving-detect plot`` (`commands/plot.py`).
"""
from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from stream.record import KINDS, read_records

Row = dict[str, str]


def number(row: Row, key: str) -> float | None:
    """The column as a float; None when the row lacks it or it is blank (another kind's column)."""
    try:
        return float(row.get(key) or "")
    except ValueError:
        return None


def load_rows(path: Path, kind: str | None, last: int | None) -> list[Row]:
    """The log's rows with a numeric FPS, of ``kind`` if given, the last ``last`` of them; errors are ValueErrors."""
    try:
        rows = read_records(path)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"'{path}' is not a readable CSV log ({exc})") from None
    if rows and not {"kind", "fps"} <= set(rows[0]):
        raise ValueError(f"'{path}' is not a benchmark log (it has no kind and fps columns)")
    rows = [r for r in rows if number(r, "fps") is not None and (kind is None or r.get("kind") == kind)]
    if not rows:
        raise ValueError(f"'{path}' has no runs" + (f" of kind '{kind}'" if kind else ""))
    return rows[-last:] if last else rows


def short_model(row: Row) -> str:
    return (row.get("model") or "?").removeprefix("fasterrcnn_")


def size_text(row: Row) -> str:
    """`` s96`` for a run with an input min size set in its config JSON; empty for the model's default or no config."""
    try:
        size = json.loads(row.get("config") or "{}").get("model", {}).get("min_size")
    except (json.JSONDecodeError, AttributeError):
        return ""
    return f" s{size}" if size else ""


def source_text(row: Row) -> str:
    """``seattlestreet1.mp4 1920x1080``: the source's file name (a URL's last part) and its resolution when the
    row records it (rows written before it was recorded have none)."""
    name = (row.get("source") or "?").rstrip("/").rsplit("/", 1)[-1][-40:]
    return f"{name} {row.get('source_size') or ''}".rstrip()


def setting(row: Row) -> tuple[str, str, str, str, str]:
    """What a run measured apart from its backend: source and resolution, kind, model,
    ``N=<top-N>[ s<min size>]`` and variant. Runs of one clip at 640x360 and at 1080p are different settings."""
    return (source_text(row), row.get("kind") or "?", short_model(row),
            f"N={row.get('top_n') or '?'}{size_text(row)}", row.get("variant") or "")


def run_label(index: int, row: Row) -> str:
    """``#3 clip.mp4 640x360 stream driving_mobilenet_v2_fpn torch N=100 policy=lossless``: the row's place in the
    plotted set."""
    source, kind, model, top_n, variant = setting(row)
    return f"#{index} {source} {kind} {model} {row.get('backend') or '?'} {top_n} {variant}".rstrip()


def stage_names(rows: list[Row]) -> list[str]:
    """Stages with a mean value, in the log's column order (pipeline stages, then benchmark variants)."""
    keys = dict.fromkeys(k for r in rows for k in r
                         if k.startswith("stage_") and k.endswith("_mean") and number(r, k) is not None)
    return [k.removeprefix("stage_").removesuffix("_mean") for k in keys]


def fps_panel(ax: Axes, rows: list[Row]) -> None:
    """One group per setting (kind, model, top-N, size, variant); in it one bar per backend: its runs' median FPS."""
    groups = list(dict.fromkeys(setting(r) for r in rows))
    backends = list(dict.fromkeys(r.get("backend") for r in rows))
    height = 0.8 / len(backends)
    for b, backend in enumerate(backends):
        for g, group in enumerate(groups):
            fps = [number(r, "fps") for r in rows if setting(r) == group and r.get("backend") == backend]
            if not fps:
                continue
            mid = statistics.median(fps)
            bar = ax.barh(g + (b - (len(backends) - 1) / 2) * height, mid, height, color=f"C{b}", label=backend,
                          xerr=[[mid - min(fps)], [max(fps) - mid]], capsize=2)
            ax.bar_label(bar, [f"{mid:.2f}" + (f" (n={len(fps)})" if len(fps) > 1 else "")], padding=3, fontsize=7)
    ax.set_yticks(range(len(groups)), [f"{src} | {k}: {m} {n} {v}".rstrip() for src, k, m, n, v in groups],
                  fontsize=8)
    ax.invert_yaxis()
    unique = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend(unique.values(), unique.keys(), title="backend", fontsize="small", loc="upper left",
              bbox_to_anchor=(1, 1))
    ax.set(xlabel="FPS (median over runs; bars: min-max)", title="throughput per setting")


def stage_panel(ax: Axes, rows: list[Row]) -> None:
    """Per-run stacked mean ms per stage; pipeline stages overlap in time, so a bar's length is work, not latency."""
    runs = [(i, r) for i, r in enumerate(rows, 1) if stage_names([r])]
    left = [0.0] * len(runs)
    for s, stage in enumerate(stage_names([r for _, r in runs])):
        ms = [number(r, f"stage_{stage}_mean") or 0.0 for _, r in runs]
        ax.barh(range(len(runs)), ms, left=left, color=f"C{s}", label=stage)
        left = [a + b for a, b in zip(left, ms)]
    ax.set_yticks(range(len(runs)), [run_label(i, r) for i, r in runs], fontsize=8)
    ax.invert_yaxis()
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1), title="stage")
    ax.set(xlabel="mean ms per frame", title="per-stage time (stacked; pipeline stages run concurrently)")


def latency_panel(ax: Axes, rows: list[Row]) -> None:
    runs = [(i, r) for i, r in enumerate(rows, 1) if number(r, "latency_p50") is not None]
    for k, stat in enumerate(("p50", "p95")):
        ax.barh([j + (k - 0.5) * 0.4 for j in range(len(runs))],
                [number(r, f"latency_{stat}") or 0.0 for _, r in runs], 0.4, color=f"C{k}", label=stat)
    ax.set_yticks(range(len(runs)), [run_label(i, r) for i, r in runs], fontsize=8)
    ax.invert_yaxis()
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    ax.set(xlabel="ms", title="end-to-end latency per frame (model-only and serial rows: per call)")


def tune_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.get("kind") == "tune" and number(r, "map50") is not None]


def tune_panel(ax: Axes, rows: list[Row]) -> None:
    """Tune rows as FPS vs mAP@0.5: a point per setting (median FPS over repeats, min-max bars), a series per
    backend and variant, each point labelled by its top-N (and input size when set)."""
    runs = tune_rows(rows)
    for series in dict.fromkeys((r.get("backend"), r.get("variant")) for r in runs):
        groups: dict[tuple[str, ...], list[Row]] = {}
        for r in runs:
            if (r.get("backend"), r.get("variant")) == series:
                groups.setdefault(setting(r), []).append(r)
        fps = [[number(r, "fps") for r in group] for group in groups.values()]
        mid = [statistics.median(f) for f in fps]
        map50 = [statistics.median(number(r, "map50") for r in group) for group in groups.values()]
        ax.errorbar(mid, map50, xerr=[[m - min(f) for m, f in zip(mid, fps)], [max(f) - m for m, f in zip(mid, fps)]],
                    fmt="o" if series[1] == "pipeline" else "s", capsize=2, label=" ".join(filter(None, series)))
        for key, x, y in zip(groups, mid, map50):
            ax.annotate(key[3], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    ax.set(xlabel="FPS (median over repeats; bars: min-max)", ylabel="mAP@0.5", title="tune runs: FPS vs mAP@0.5")


def panels(rows: list[Row]) -> list[tuple[Callable[[Axes, list[Row]], None], float]]:
    """The panels that have data, each with its height in inches (bar panels grow with their bars)."""
    bars = len({setting(r) for r in rows}) * max(1.0, 0.6 * len({r.get("backend") for r in rows}))
    stages = sum(bool(stage_names([r])) for r in rows)
    latency = sum(number(r, "latency_p50") is not None for r in rows)
    candidates = [(fps_panel, 1.2 + 0.25 * bars, True), (stage_panel, 1.2 + 0.25 * stages, stages),
                  (latency_panel, 1.2 + 0.3 * latency, latency), (tune_panel, 4.0, tune_rows(rows))]
    return [(draw, height) for draw, height, present in candidates if present]


def plot(rows: list[Row], path: Path, title: str) -> Path:
    """The panels with data stacked in one PNG (Figure without pyplot: no GUI backend needed)."""
    chosen = panels(rows)
    heights = [height for _, height in chosen]
    fig = Figure(figsize=(11, sum(heights) + 0.8), dpi=100, layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(len(chosen), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (draw, _) in zip(axes, chosen):
        draw(ax, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
