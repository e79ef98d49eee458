"""The public 3D MNIST set (Kaggle, daavoo) from its ``full_dataset_vectors.h5``.

The file holds ``X_train`` ``(10000, 4096)``, ``y_train`` ``(10000,)``, ``X_test`` ``(2000, 4096)`` and ``y_test``
``(2000,)``: each row a 16^3 voxel grid, values 0-1, flattened in C order over ``(x, y, z)`` (the set's voxeliser,
pyntcloud's ``VoxelGrid``, numbers voxels with ``ravel_multi_index([x, y, z])``). Volumes come back ``(z, y, x)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_volseg.classify.data import DIGIT_CLASSES, FixedSource, VolumeSet
from napari_volseg.errors import VolsegError

SIDE = 16
KEYS = ("X_train", "y_train", "X_test", "y_test")


def _part(x: np.ndarray, y: np.ndarray, part: str) -> VolumeSet:
    volumes = np.ascontiguousarray(x.reshape(-1, SIDE, SIDE, SIDE).transpose(0, 3, 2, 1), dtype=np.float32)
    ids = tuple(f"{part}-{i:05d}" for i in range(len(y)))
    return VolumeSet(volumes, y.astype(np.int64), ids, DIGIT_CLASSES)


def load(path: str | os.PathLike, limit: int | None = None) -> tuple[VolumeSet, VolumeSet]:
    """The training and test sets of a ``full_dataset_vectors.h5`` (the first ``limit`` volumes of each)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise VolsegError(f"no 3D MNIST file at {path}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in KEYS if k not in f]
            if missing:
                raise VolsegError(f"{path.name} is not a 3D MNIST vectors file: no {', '.join(missing)}")
            arrays = {k: np.asarray(f[k][:limit]) for k in KEYS}
    except OSError as exc:
        raise VolsegError(f"{path.name} is not a readable HDF5 file ({exc})") from exc
    for part in ("train", "test"):
        x, y = arrays[f"X_{part}"], arrays[f"y_{part}"]
        if x.ndim != 2 or x.shape[1] != SIDE**3 or y.shape != (len(x),):
            raise VolsegError(
                f"{path.name}: X_{part} must be (N, {SIDE**3}) with N labels in y_{part}; got {x.shape} and {y.shape}"
            )
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise VolsegError(f"{path.name}: y_{part} holds labels outside 0-9")
    return _part(arrays["X_train"], arrays["y_train"], "train"), _part(arrays["X_test"], arrays["y_test"], "test")


def source(path: str | os.PathLike, limit: int | None = None) -> FixedSource:
    """The file as a training source: the same volumes every epoch."""
    train, test = load(path, limit)
    return FixedSource(train, test, f"3D MNIST from {Path(path).name}: {len(train)} train, {len(test)} test volumes")
