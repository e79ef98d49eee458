"""A VGG-13-like volume classifier with 3D convolutions: the seed report's 3D MNIST network (its Figure 24).

Input ``(N, 1, S, S, S)`` with ``S = input_size`` (16 for 3D MNIST), values 0-1; output logits ``(N, classes)``.
Each block is two 3x3x3 convolutions (with bias) each followed by BatchNorm and ReLU, then 2x2x2 max-pooling; four
blocks take 16^3 to ``widths[-1] x 1 x 1 x 1``, then Linear -> ReLU -> Linear.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VGG3DConfig:
    """Architecture of :class:`VGG3D`; stored in every classifier checkpoint."""

    in_channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (64, 128, 256, 512)
    hidden: int = 100
    input_size: int = 16
    """Edge of the cubic input volume in voxels; a multiple of ``2 ** len(widths)``."""

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.input_size % 2 ** len(self.widths):
            raise ValueError(f"input_size {self.input_size} is not a multiple of 2 ** {len(self.widths)}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The ``(z, y, x)`` shape of one input volume."""
        return (self.input_size,) * 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


def _block(cin: int, cout: int) -> nn.Sequential:
    layers = []
    for c in (cin, cout):
        layers += [nn.Conv3d(c, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool3d(2))


class VGG3D(nn.Module):
    def __init__(self, config: VGG3DConfig):
        super().__init__()
        self.config = config
        chans = (config.in_channels, *config.widths)
        self.features = nn.Sequential(*(_block(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)))
        side = config.input_size // 2 ** len(config.widths)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(config.widths[-1] * side**3, config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
