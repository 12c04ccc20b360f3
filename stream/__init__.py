"""Streaming: sources, the stage runner and its queues, the pipeline, overlay, sinks, timing and benchmark records."""
