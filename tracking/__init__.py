"""Tracking: object identities over a sequence of `Detections`, and motion-predicted boxes between detector frames.

Per-frame state machines only: no threads, no queues (the stream layer runs them as a pipeline stage).
"""
