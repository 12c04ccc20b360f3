"""Faster R-CNN detector: model builders, weights, NMS, backends, datasets, evaluation, training, tuning."""
