"""Evaluation: AP metrics (VOC all-point, 11-point, COCO) and the evaluate library behind ``driving-detect evaluate``."""
