import math

import numpy as np
import pytest
import torch

from napari_volseg import losses, metrics
from napari_volseg.errors import VolsegError


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


@pytest.mark.parametrize("name", losses.LOSSES)
def test_losses_prefer_the_right_answer(name):
    target = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    target[..., 2:6, 2:6, 2:6] = 1
    good = torch.cat([(target == 0).float(), (target == 1).float()], dim=1) * 10
    bad = good.flip(1)
    fn = losses.make_loss(name, alpha=0.5)
    assert fn(good, target) < fn(bad, target)


def test_alpha_outside_range_is_refused():
    with pytest.raises(VolsegError, match="alpha"):
        losses.make_loss("dicece", alpha=1.5)
