"""Streaming pipeline: sources, the one stage runner, queues, rendering, sinks, metrics."""
import os

# OpenCV and its FFmpeg backend write their own warnings to stderr (a refused RTSP connection gives three lines
# before ours); the pipeline reports those conditions itself in one line. Set these variables (e.g.
# OPENCV_LOG_LEVEL=INFO) to see them again.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
