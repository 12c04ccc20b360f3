"""Streaming pipeline: sources, the one stage runner, queues, rendering, sinks, metrics."""
