"""Training losses on logits ``(N, classes, z, y, x)`` and integer targets ``(N, 1, z, y, x)``.

MONAI's implementations: cross-entropy, multi-class soft Dice (1 - 2|A∩B| / (|A| + |B|), softmax,
background included as in the seed report), and alpha·Dice + (1 - alpha)·CE.
"""

from __future__ import annotations

from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from napari_volseg.engine.config import LOSSES
from napari_volseg.errors import VolsegError

__all__ = ["LOSSES", "make_loss"]


class CrossEntropy(nn.Module):
    """Cross-entropy taking MONAI-style ``(N, 1, ...)`` integer targets."""

    def __init__(self):
        super().__init__()
        self.ce = nn.CrossEntropyLoss()

    def forward(self, logits, target):
        return self.ce(logits, target[:, 0].long())


def make_loss(name: str, alpha: float = 0.5) -> nn.Module:
    """``ce``, ``dice`` or ``dicece`` (alpha weighs Dice, 1 - alpha weighs CE)."""
    if name == "ce":
        return CrossEntropy()
    if name == "dice":
        return DiceLoss(to_onehot_y=True, softmax=True, batch=True)
    if name == "dicece":
        if not 0.0 <= alpha <= 1.0:
            raise VolsegError(f"alpha must be within [0, 1], got {alpha}")
        return DiceCELoss(to_onehot_y=True, softmax=True, batch=True, lambda_dice=alpha, lambda_ce=1.0 - alpha)
    raise VolsegError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
