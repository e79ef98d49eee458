"""Losses: each prefers the right answer; bad settings are one-line errors."""

import pytest
import torch

from napari_volseg import losses
from napari_volseg.errors import VolsegError


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


def test_deep_supervision_weighs_each_level_against_its_shrunk_target():
    target = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    target[..., 2:6, 2:6, 2:6] = 1
    target[..., 0, 0, :] = 255  # unlabelled voxels stay unlabelled at every level
    full = torch.randn(1, 2, 8, 8, 8)
    half = torch.randn(1, 2, 4, 4, 4)
    plain = losses.make_loss("dicece")
    ds = losses.make_loss("dicece", deep_supervision=True)
    shrunk = target[..., 1::2, 1::2, 1::2]  # nearest-exact at half size takes the odd voxels
    assert torch.allclose(ds([full, half], target), plain(full, target) + 0.5 * plain(half, shrunk))
    assert torch.allclose(ds(full, target), plain(full, target))  # eval-mode logits: the plain loss
