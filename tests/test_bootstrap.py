"""Bootstrap intervals of AP@0.5: the re-weighted AP equals the AP of the resampled dataset built out, intervals
cover what they should, and paired differences cancel what two models share."""
from __future__ import annotations

import numpy as np
import pytest

from core.detections import Detections
from core.labels import LABELS
from evaluation.bootstrap import class_matches, interval, resample_weights, resampled_ap, resampled_aps
from evaluation.evaluate import paired_differences, score
from evaluation.metrics import GroundTruth, class_curves
from tests.test_metrics import CAR, random_scene

PERSON = 6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_ones_is_the_datasets_own_ap(seed: int) -> None:
    detections, truths = random_scene(np.random.default_rng(seed), (CAR, PERSON))
    for cls in (CAR, PERSON):
        whole = class_curves(detections, truths, cls, np.array([0.5]))[0].ap_voc
        assert resampled_ap(class_matches(detections, truths, cls), np.ones((1, len(truths)), int))[0] == \
            pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_weights_equal_the_resampled_dataset_built_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    detections, truths = random_scene(rng, (CAR,))
    weights = resample_weights(len(truths), 5, seed)
    got = resampled_ap(class_matches(detections, truths, CAR), weights)
    for row, ap in zip(weights, got):
        drawn = [i for i, k in enumerate(row) for _ in range(k)]
        built = class_curves([detections[i] for i in drawn], [truths[i] for i in drawn], CAR, np.array([0.5]))[0]
        if built.num_gt == 0:
            assert np.isnan(ap)
        else:
            assert ap == pytest.approx(built.ap_voc, abs=1e-12)


def test_resample_weights_draw_every_image_count_once_per_row_and_repeat_by_seed() -> None:
    weights = resample_weights(7, 50, seed=1)
    assert weights.shape == (50, 7) and (weights.sum(1) == 7).all()
    assert (weights == resample_weights(7, 50, seed=1)).all() and not (weights == resample_weights(7, 50, 2)).all()


def test_interval_is_wide_for_a_few_boxes_and_narrow_for_many() -> None:
    detections, truths = random_scene(np.random.default_rng(5), (CAR,))
    few = interval(resampled_aps(detections, truths, [CAR], resamples=300)[CAR])
    many = interval(resampled_aps(detections * 20, truths * 20, [CAR], resamples=300)[CAR])
    whole = class_curves(detections, truths, CAR, np.array([0.5]))[0].ap_voc
    assert few[0] <= whole <= few[1] and many[0] <= whole <= many[1]
    assert many[1] - many[0] < (few[1] - few[0]) / 2


def test_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    detections, truths = random_scene(np.random.default_rng(6), (CAR, PERSON))
    same = paired_differences(score(detections, truths, 200), score(detections, truths, 200))
    assert set(same) == {LABELS[CAR], LABELS[PERSON]}
    for diff, low, high in same.values():
        assert diff == low == high == 0.0


def test_paired_difference_finds_a_model_that_misses_half_the_people() -> None:
    rng = np.random.default_rng(7)
    truths, perfect, half = [], [], []
    for _ in range(40):
        xy = rng.uniform(0, 100, (2, 2))
        boxes = np.hstack([xy, xy + 40]).astype(np.float32)
        labels = np.array([PERSON, PERSON])
        truths.append(GroundTruth(boxes, labels))
        perfect.append(Detections(boxes, np.array([0.9, 0.8]), labels))
        half.append(Detections(boxes[:1], np.array([0.9]), labels[:1]))
    ours, theirs = score(perfect, truths, 300), score(half, truths, 300)
    diff, low, high = paired_differences(ours, theirs)[LABELS[PERSON]]
    assert diff == pytest.approx(0.5) and 0 < low <= diff <= high
    _, low, high = paired_differences(theirs, ours)[LABELS[PERSON]]
    assert high < 0


def test_no_resamples_gives_the_difference_without_an_interval() -> None:
    detections, truths = random_scene(np.random.default_rng(8), (CAR,))
    diff, low, high = paired_differences(score(detections, truths, 0),
                                         score(detections[::-1], truths, 0))[LABELS[CAR]]
    assert np.isfinite(diff) and np.isnan(low) and np.isnan(high)


def test_a_dataset_without_images_or_the_class_has_no_interval() -> None:
    assert resample_weights(0, 4).shape == (4, 0)
    assert interval(resampled_aps([], [], [CAR], resamples=10)[CAR]) == (pytest.approx(np.nan, nan_ok=True),) * 2
    detections, truths = random_scene(np.random.default_rng(9), (CAR,))
    low, high = interval(resampled_aps(detections, truths, [PERSON], resamples=10)[PERSON])
    assert np.isnan(low) and np.isnan(high)


def test_chunked_scoring_equals_scoring_at_once(monkeypatch) -> None:
    detections, truths = random_scene(np.random.default_rng(10), (CAR,))
    matches = class_matches(detections, truths, CAR)
    weights = resample_weights(len(truths), 37, seed=3)
    whole = resampled_ap(matches, weights)
    monkeypatch.setattr("evaluation.bootstrap.CELLS", 5 * len(matches.tp))  # chunks of 5 resamples
    np.testing.assert_array_equal(resampled_ap(matches, weights), whole)
