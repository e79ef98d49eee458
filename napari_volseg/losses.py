"""Training losses on logits ``(N, classes, z, y, x)`` and integer targets ``(N, 1, z, y, x)``.

MONAI's implementations: cross-entropy, multi-class soft Dice (1 - 2|A∩B| / (|A| + |B|), softmax,
background included as in the seed report), and alpha·Dice + (1 - alpha)·CE. Every loss ignores
target voxels of value :data:`~napari_volseg.preprocess.UNLABELLED` (sparse labels) in both terms:
MONAI's ``DiceLoss(ignore_index=...)`` masks them out of the Dice sums, torch's cross-entropy out of
its mean. (MONAI's ``DiceCELoss`` does not take ``ignore_index``, hence the composition below.)
"""

from __future__ import annotations

from monai.losses import DiceLoss
from torch import nn

from napari_volseg.engine.config import LOSSES
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


def make_loss(name: str, alpha: float = 0.5) -> nn.Module:
    """``ce``, ``dice`` or ``dicece`` (alpha weighs Dice, 1 - alpha weighs CE)."""
    if name == "ce":
        return CrossEntropy()
    if name == "dice":
        return _dice()
    if name == "dicece":
        if not 0.0 <= alpha <= 1.0:
            raise VolsegError(f"alpha must be within [0, 1], got {alpha}")
        return DiceCE(alpha)
    raise VolsegError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
