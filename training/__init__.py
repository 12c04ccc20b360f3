"""Training: the Faster R-CNN trainer behind ``driving-detect train`` (data, augmentation, schedule, checkpoints)."""
