"""Core types every layer shares: `Detections`, the label map, the config loader, image files, log helpers.

The lowest layer: it imports no other package of the project.
"""
