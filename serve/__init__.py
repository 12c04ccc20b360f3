"""The live web view of a run: dashboard, MJPEG stream, JSON status and Prometheus metrics (``--serve``)."""
