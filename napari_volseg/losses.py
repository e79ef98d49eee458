"""Training losses on logits ``(N, classes, z, y, x)`` and integer targets ``(N, 1, z, y, x)``.

MONAI's implementations: cross-entropy, multi-class soft Dice (1 - 2|A∩B| / (|A| + |B|), softmax,
background included as in the seed report), and alpha·Dice + (1 - alpha)·CE. Every loss ignores
target voxels of value :data:`~napari_volseg.preprocess.UNLABELLED` (sparse labels) in both terms:
MONAI's ``DiceLoss(ignore_index=...)`` masks them out of the Dice sums, torch's cross-entropy out of
its mean. (MONAI's ``DiceCELoss`` does not take ``ignore_index``, hence the composition below.)
"""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss, DiceLoss
from torch import nn

from napari_volseg.config import LOSSES
from napari_volseg.errors import VolsegError
from napari_volseg.preprocess import UNLABELLED

__all__ = ["LOSSES", "make_loss"]


class CrossEntropy(nn.Module):
    """Cross-entropy taking MONAI-style ``(N, 1, ...)`` integer targets; unlabelled voxels ignored."""

    def __init__(self):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=UNLABELLED)

    def forward(self, logits, target):
        return self.ce(logits, target[:, 0].long())


class DiceCE(nn.Module):
    """``alpha`` · soft Dice + (1 - ``alpha``) · cross-entropy (MONAI's ``DiceCELoss`` formula)."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha
        self.dice = _dice()
        self.ce = CrossEntropy()

    def forward(self, logits, target):
        return self.alpha * self.dice(logits, target) + (1.0 - self.alpha) * self.ce(logits, target)


def _dice() -> DiceLoss:
    return DiceLoss(to_onehot_y=True, softmax=True, batch=True, ignore_index=UNLABELLED)


class DeepSupervised(nn.Module):
    """MONAI's ``DeepSupervisionLoss`` over a deep-supervised net's ``[full, half, ...]`` logits (weights 1,
    0.5, 0.25, ...; the target shrunk by nearest-exact sampling). The target goes in as float, as torch
    cannot resample integer tensors; the losses above take it back to integers. A single tensor (eval mode,
    or a net without deep supervision) gets the plain loss."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.ds = DeepSupervisionLoss(loss, weight_mode="exp")

    def forward(self, logits: torch.Tensor | list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return self.ds(logits, target.float())


def make_loss(name: str, alpha: float = 0.5, deep_supervision: bool = False) -> nn.Module:
    """``ce``, ``dice`` or ``dicece`` (alpha weighs Dice, 1 - alpha weighs CE); ``deep_supervision``: the
    loss takes a list of logits at falling resolutions (:class:`DeepSupervised`)."""
    if name == "ce":
        loss = CrossEntropy()
    elif name == "dice":
        loss = _dice()
    elif name == "dicece":
        if not 0.0 <= alpha <= 1.0:
            raise VolsegError(f"alpha must be within [0, 1], got {alpha}")
        loss = DiceCE(alpha)
    else:
        raise VolsegError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    return DeepSupervised(loss) if deep_supervision else loss
