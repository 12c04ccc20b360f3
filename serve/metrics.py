"""``/metrics``: the run in Prometheus text format (prometheus-client), from a registry of this run alone.

Counters, not rates (frames, dropped, skipped, reconnects, detections and objects seen per class), so a stalled
camera is a flat line to any alert; gauges for FPS, queue depths, viewers, objects in view and whether the source
is up; histograms of per-stage and end-to-end latency; each series per source, by a ``source`` label. Values are
read from `LiveRun` when scraped. prometheus-client's process collector adds the process's CPU seconds, memory and open files (``process_*``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from serve.live import LiveRun, by_class

PREFIX = "driving_detect"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class RunCollector(Collector):
    """Every source's series, each with a ``source`` label (the source's NAME), so one scrape covers a run of
    several sources and a query picks one with ``{source="..."}``."""

    def __init__(self, lives: list[LiveRun]):
        self.lives = lives

    def collect(self) -> Iterator[Metric]:
        for live in self.lives:
            live.absorb()
        counters = (("frames", "frames written (video and detections)", lambda s: s.written),
                    ("dropped", "frames dropped by drop-oldest queues", lambda s: s.dropped),
                    ("skipped", "corrupt source frames skipped", lambda s: s.skipped),
                    ("reconnects", "reconnects of a live source", lambda s: s.reconnects))
        for name, doc, read in counters:
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["source"])
            for live in self.lives:
                family.add_metric([live.source_id], read(live.stats))
            yield family
        yield self._by_class(CounterMetricFamily(f"{PREFIX}_detections", "boxes in written frames, by class",
                                                 labels=["source", "class"]), lambda live: live.detections)
        tracked = [live for live in self.lives if live.tracked]
        if tracked:
            yield self._by_class(CounterMetricFamily(f"{PREFIX}_objects_seen", "confirmed tracks, by class",
                                                     labels=["source", "class"]), lambda live: live.objects_seen,
                                 tracked)
        yield self._by_class(GaugeMetricFamily(f"{PREFIX}_objects_in_view", "objects in the newest written frame "
                                               "(confirmed tracks when tracked), by class",
                                               labels=["source", "class"]), lambda live: live.in_view)
        gauges = (("fps", "frames written per second, recent", lambda live: live.fps_recent),
                  ("source_up", "1 while the source delivers frames", lambda live: int(live.source_up)),
                  ("viewers", "MJPEG viewers connected", lambda live: live.hub.viewers))
        for name, doc, read in gauges:
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["source"])
            for live in self.lives:
                family.add_metric([live.source_id], read(live))
            yield family
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "items waiting in the queue after a stage",
                                  labels=["source", "queue"])
        stages = HistogramMetricFamily(f"{PREFIX}_stage_latency_seconds", "time per item in each stage",
                                       labels=["source", "stage"])
        end_to_end = HistogramMetricFamily(f"{PREFIX}_end_to_end_latency_seconds", "capture to written",
                                           labels=["source"])
        for live in self.lives:
            for name, value in live.stats.queue_depths().items():
                depth.add_metric([live.source_id, name], value)
            for name, histogram in live.stage_latency.items():
                stages.add_metric([live.source_id, name], histogram.buckets(), histogram.sum)
            end_to_end.add_metric([live.source_id], live.end_to_end.buckets(), live.end_to_end.sum)
        yield depth
        yield stages
        yield end_to_end

    def _by_class(self, family: Metric, counts: Callable[[LiveRun], np.ndarray],
                  lives: list[LiveRun] | None = None) -> Metric:
        for live in self.lives if lives is None else lives:
            for label, count in by_class(counts(live)).items():
                family.add_metric([live.source_id, label], count)
        return family


def run_registry(lives: list[LiveRun]) -> CollectorRegistry:
    """A registry of this run's metrics and its process's (not the global registry: nothing another library
    registers there leaks into the run's metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(lives))
    ProcessCollector(registry=registry)
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
