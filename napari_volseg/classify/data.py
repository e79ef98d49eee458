"""Labelled sets of small volumes for the 3D classifier, and the sources a training run draws them from.

A source gives the training volumes of each epoch (the same every epoch, or freshly drawn ones) and one fixed
test set; :mod:`napari_volseg.classify.digits3d` and :mod:`napari_volseg.classify.mnist3d` make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from napari_volseg.errors import VolsegError

DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class VolumeSet:
    """``volumes`` ``(N, z, y, x)`` float32 in 0-1, ``labels`` ``(N,)`` int64 indices into ``classes``."""

    volumes: np.ndarray
    labels: np.ndarray
    ids: tuple[str, ...]
    classes: tuple[str, ...] = DIGIT_CLASSES

    def __post_init__(self):
        if self.volumes.ndim != 4 or len(self.volumes) != len(self.labels) or len(self.ids) != len(self.labels):
            raise VolsegError(
                f"a volume set needs (N, z, y, x) volumes with N labels and ids; got {self.volumes.shape}, "
                f"{len(self.labels)} labels, {len(self.ids)} ids"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> VolumeSet:
        """The first ``n`` volumes (all when ``n`` is None)."""
        if n is None:
            return self
        return VolumeSet(self.volumes[:n], self.labels[:n], self.ids[:n], self.classes)


class VolumeSource(Protocol):
    """Where a training run gets its volumes."""

    description: str

    def train(self, epoch: int) -> VolumeSet: ...

    def test(self) -> VolumeSet: ...


@dataclass(frozen=True)
class FixedSource:
    """The same training volumes every epoch (a data set read from disk)."""

    train_set: VolumeSet
    test_set: VolumeSet
    description: str

    def train(self, epoch: int) -> VolumeSet:
        return self.train_set

    def test(self) -> VolumeSet:
        return self.test_set
