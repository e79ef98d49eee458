"""Per-class scores on the source grid: Dice with its empty-mask convention, HD95 in mm, volumes, error maps."""

import math

import numpy as np
import pytest

from napari_volseg import metrics


def test_dice_on_known_overlap_and_empty_masks():
    a = np.zeros((4, 10, 10), np.uint8)
    b = np.zeros_like(a)
    a[:, :5] = 1  # 200 voxels
    b[:, 2:7] = 1  # 200 voxels, overlap 120
    assert metrics.dice(a, b) == (pytest.approx(2 * 120 / 400), False)
    assert metrics.dice(np.zeros_like(a), np.zeros_like(a)) == (1.0, True)
    assert metrics.dice(a, np.zeros_like(a)) == (0.0, False)


def test_hd95_is_in_millimetres():
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[5:15, 5:15, 5:15] = 1
    pred = np.roll(truth, 2, axis=2)  # shifted 2 voxels along x
    assert metrics.hd95(pred, truth, 1, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert metrics.hd95(pred, truth, 1, (1.0, 1.0, 0.5)) == pytest.approx(1.0)
    assert math.isnan(metrics.hd95(pred, np.zeros_like(truth), 1, (1, 1, 1)))


def test_score_case_reports_volumes_in_ml():
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[:5] = 1
    truth[5:] = 2
    [s1, s2] = metrics.score_case(truth, truth, 3, (2.0, 1.0, 1.0))
    assert s1.dice == s2.dice == 1.0 and s1.true_ml == pytest.approx(500 * 2 / 1000)


def test_error_map_marks_false_positives_and_false_negatives():
    truth = np.array([0, 1, 1, 0, 2], np.uint8)
    pred = np.array([1, 1, 0, 0, 1], np.uint8)
    # background predicted as 1: FP; 1 missed: FN; class 2 predicted as class 1: FP
    np.testing.assert_array_equal(metrics.error_map(pred, truth), [1, 0, 2, 0, 1])
