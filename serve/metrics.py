"""``/metrics``: the run in Prometheus text format (prometheus-client), from a registry of this run alone.

Counters, not rates (frames, dropped, skipped, reconnects, detections and objects seen per class), so a stalled
camera is a flat line to any alert; gauges for FPS, queue depths, viewers, objects in view and whether the source
is up; histograms of per-stage and end-to-end latency. Values are read from `LiveRun` when scraped.
prometheus-client's process collector adds the process's CPU seconds, memory and open files (``process_*``).
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from serve.live import LiveRun, by_class

PREFIX = "driving_detect"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class RunCollector(Collector):
    def __init__(self, live: LiveRun):
        self.live = live

    def collect(self) -> Iterator[Metric]:
        live, stats = self.live, self.live.stats
        live.absorb()
        for name, value, doc in (("frames", stats.written, "frames written (video and detections)"),
                                 ("dropped", stats.dropped, "frames dropped by drop-oldest queues"),
                                 ("skipped", stats.skipped, "corrupt source frames skipped"),
                                 ("reconnects", live.reconnects, "reconnects of a live source")):
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        detections = CounterMetricFamily(f"{PREFIX}_detections", "boxes in written frames, by class", labels=["class"])
        for label, count in by_class(live.detections).items():
            detections.add_metric([label], count)
        yield detections
        if live.tracked:
            seen = CounterMetricFamily(f"{PREFIX}_objects_seen", "confirmed tracks, by class", labels=["class"])
            for label, count in by_class(live.objects_seen).items():
                seen.add_metric([label], count)
            yield seen
        in_view = GaugeMetricFamily(f"{PREFIX}_objects_in_view", "objects in the newest written frame (confirmed "
                                    "tracks when tracked), by class", labels=["class"])
        for label, count in by_class(live.in_view).items():
            in_view.add_metric([label], count)
        yield in_view
        yield GaugeMetricFamily(f"{PREFIX}_fps", "frames written per second, recent", value=live.fps_recent)
        yield GaugeMetricFamily(f"{PREFIX}_source_up", "1 while the source delivers frames", value=int(live.source_up))
        yield GaugeMetricFamily(f"{PREFIX}_viewers", "MJPEG viewers connected", value=live.hub.viewers)
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "items waiting in the queue after a stage", labels=["queue"])
        for name, value in stats.queue_depths().items():
            depth.add_metric([name], value)
        yield depth
        stages = HistogramMetricFamily(f"{PREFIX}_stage_latency_seconds", "time per item in each stage",
                                       labels=["stage"])
        for name, histogram in live.stage_latency.items():
            stages.add_metric([name], histogram.buckets(), histogram.sum)
        yield stages
        end_to_end = HistogramMetricFamily(f"{PREFIX}_end_to_end_latency_seconds", "capture to written")
        end_to_end.add_metric([], live.end_to_end.buckets(), live.end_to_end.sum)
        yield end_to_end


def run_registry(live: LiveRun) -> CollectorRegistry:
    """A registry of this run's metrics and its process's (not the global registry: nothing another library
    registers there leaks into the run's metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(live))
    ProcessCollector(registry=registry)
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
