"""3D digits: real handwritten digits (scikit-learn's bundled set) extruded, rotated and voxelised at 16^3.

How one volume is made from an 8 x 8 digit (values 0..16, the number of inked pixels in each 4 x 4 block of the
writer's 32 x 32 bitmap, so ``value / 16`` is the block's ink fraction):

1. **Points**: every pixel with ink is sampled by 4 x 4 points in its square, each weighing the pixel's ink
   fraction; the digit lies in the ``(y, x)`` plane, centred, 1 pixel = 1 unit, ``y`` down the rows.
2. **Extrusion**: the points are repeated along ``z`` every 0.2 units through a random thickness, uniform in
   1-4 pixels, centred on the plane.
3. **Noise and rotation**: every point moves by Gaussian noise (sigma 0.1 pixel); then the cloud turns about a
   random axis (uniform on the sphere) by a random angle, uniform in 0-45 degrees, so a 6 never becomes a 9.
4. **Voxelisation**: 1 pixel = 1.5 voxels, cloud centred in a 16^3 grid; each voxel holds the summed weight of
   its points divided by the weight of a voxel filled with ink (23.7 points), clipped to 1: the fraction of the
   voxel the inked solid fills, in 0-1 (points beyond the grid, a rotated corner, are dropped).

Every volume is a pure function of ``(seed, digit index, copy)``, so sets are reproducible and a smaller set is
the head of a larger one. The train/test split is fixed and independent of the seed: 30 digits of each class
(300) are the test digits, the other 1,497 train (scikit-learn's set is UCI's test part: 13 writers, so test
digits share writers with training digits).

How it differs from 3D MNIST (Kaggle, daavoo): that set turned 28 x 28 MNIST digits (5,000 train / 1,000 test
digits, hundreds of writers) into 3D point clouds and voxelised randomly rotated, noisy copies at 16^3
(10,000 / 2,000 volumes, values 0-1). Here the digits are 8 x 8 (coarser strokes), from 13 writers, 1,797 in
all, and the copies per digit are a setting; the volumes are the same kind (16^3, 0-1, rotated point clouds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.spatial.transform import Rotation

from napari_volseg.classify.data import DIGIT_CLASSES, VolumeSet
from napari_volseg.errors import VolsegError

SIZE = 16
SUBSAMPLE = 4
Z_STEP = 0.2
THICKNESS = (1.0, 4.0)
NOISE = 0.1
MAX_ANGLE_DEG = 45.0
VOXELS_PER_PIXEL = 1.5
TEST_PER_CLASS = 30
SPLIT_SEED = 20
FULL_VOXEL_WEIGHT = SUBSAMPLE**2 / Z_STEP / VOXELS_PER_PIXEL**3
"""Summed point weight of a voxel that the inked solid fills (23.7)."""


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


@lru_cache(maxsize=1)
def split() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test digits (1,497 and 300), each in increasing order."""
    _, target = _digits()
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.concatenate([rng.permutation(np.flatnonzero(target == c))[:TEST_PER_CLASS] for c in range(10)])
    is_test = np.zeros(len(target), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def digit_volume(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 16^3 volume ``(z, y, x)`` float32 in 0-1 from an 8 x 8 digit image (ink fractions 0-1)."""
    rows, cols = np.nonzero(image > 0)
    offsets = (np.arange(SUBSAMPLE) + 0.5) / SUBSAMPLE - 0.5
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    y = (rows[:, None] + dy.ravel()[None] - (image.shape[0] - 1) / 2).ravel()
    x = (cols[:, None] + dx.ravel()[None] - (image.shape[1] - 1) / 2).ravel()
    w = np.repeat(image[rows, cols], SUBSAMPLE**2)
    thickness = rng.uniform(*THICKNESS)
    z_levels = np.arange(-thickness / 2 + Z_STEP / 2, thickness / 2, Z_STEP)
    points = np.stack(
        [np.repeat(z_levels, len(y)), np.tile(y, len(z_levels)), np.tile(x, len(z_levels))], axis=1
    ).astype(np.float64)
    weights = np.tile(w, len(z_levels))
    points += rng.normal(0.0, NOISE, points.shape)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.0, MAX_ANGLE_DEG))
    points = Rotation.from_rotvec(axis * angle).apply(points)
    index = np.floor(points * VOXELS_PER_PIXEL + SIZE / 2).astype(np.int64)
    inside = np.all((index >= 0) & (index < SIZE), axis=1)
    flat = np.ravel_multi_index(tuple(index[inside].T), (SIZE,) * 3)
    volume = np.bincount(flat, weights=weights[inside], minlength=SIZE**3) / FULL_VOXEL_WEIGHT
    return np.clip(volume, 0.0, 1.0).reshape((SIZE,) * 3).astype(np.float32)


def make_set(part: str, copies: int = 1, first_copy: int = 0, seed: int = 0, limit: int | None = None) -> VolumeSet:
    """``copies`` volumes of each digit of ``part`` ("train" or "test"), copies ``first_copy, first_copy + 1, ...``.

    ``limit`` keeps the first ``limit`` digits of the part (the set's digits cycle through the classes, so a
    head is nearly balanced). Volumes are ordered digit by digit, copies of one digit together.
    """
    return _volumes(split()[0 if part == "train" else 1][:limit], copies, first_copy, seed)


def test_sample(position: int, copy: int = 0, seed: int = 0) -> VolumeSet:
    """One volume of the test set: copy ``copy`` of its ``position``-th digit (0-299)."""
    test = split()[1]
    if not 0 <= position < len(test):
        raise VolsegError(f"test digit {position} does not exist: there are {len(test)} (0-{len(test) - 1})")
    return _volumes(test[position : position + 1], 1, copy, seed)


def _volumes(indices: np.ndarray, copies: int, first_copy: int, seed: int) -> VolumeSet:
    images, target = _digits()
    volumes, labels, ids = [], [], []
    for i in indices:
        for copy in range(first_copy, first_copy + copies):
            volumes.append(digit_volume(images[i], np.random.default_rng([seed, int(i), copy])))
            labels.append(target[i])
            ids.append(f"digit{i:04d}-{copy}")
    return VolumeSet(np.stack(volumes), np.asarray(labels, dtype=np.int64), tuple(ids), DIGIT_CLASSES)


@dataclass
class DigitsSource:
    """The 3D digits as a training source: ``train_copies`` volumes per training digit, ``test_copies`` per test digit.

    With ``fresh`` each epoch draws new copies (epoch ``e`` uses copies ``e * train_copies ...``): augmentation
    that stays a pure function of the seed. Without it every epoch sees the same volumes, like a fixed data set.
    """

    train_copies: int = 2
    test_copies: int = 2
    fresh: bool = False
    seed: int = 0
    limit: int | None = None
    _fixed: dict = field(default_factory=dict, repr=False)

    @property
    def description(self) -> str:
        n_train, n_test = (len(ix[: self.limit]) for ix in split())
        how = "fresh copies every epoch" if self.fresh else "the same volumes every epoch"
        return (
            f"3D digits (scikit-learn's 8x8 digits extruded, rotated, voxelised at 16^3; seed {self.seed}): "
            f"{n_train} train digits x {self.train_copies} copies ({how}), {n_test} test digits x {self.test_copies}"
        )

    def train(self, epoch: int) -> VolumeSet:
        if self.fresh:
            return make_set("train", self.train_copies, epoch * self.train_copies, self.seed, self.limit)
        if "train" not in self._fixed:
            self._fixed["train"] = make_set("train", self.train_copies, 0, self.seed, self.limit)
        return self._fixed["train"]

    def test(self) -> VolumeSet:
        if "test" not in self._fixed:
            self._fixed["test"] = make_set("test", self.test_copies, 0, self.seed, self.limit)
        return self._fixed["test"]
