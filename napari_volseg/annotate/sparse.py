"""Sparse labels: some voxels left unannotated (the task's ``unlabelled`` value), e.g. only some slices."""

from __future__ import annotations

import numpy as np

from napari_volseg.io.decathlon import Case, Task


def keep_slices(label_zyx: np.ndarray, every: int, unlabelled: int = 255, offset: int | None = None) -> np.ndarray:
    """Every ``every``-th axial (z) slice of a dense label kept, the rest set to ``unlabelled``.

    ``offset`` (default ``every // 2``) is the first kept slice; the result is uint8/uint16 like the input.
    """
    if every < 1:
        raise ValueError("every must be at least 1")
    out = np.full(label_zyx.shape, unlabelled, dtype=np.promote_types(label_zyx.dtype, np.min_scalar_type(unlabelled)))
    start = every // 2 if offset is None else offset
    out[start::every] = label_zyx[start::every]
    return out


def finish_slice(label_zyx: np.ndarray, z: int, unlabelled: int) -> int:
    """Mark the still unlabelled voxels of axial slice ``z`` as background (in place); returns how many."""
    plane = label_zyx[z]
    rest = plane == unlabelled
    plane[rest] = 0
    return int(rest.sum())


def unlabelled_volume(shape_zyx: tuple[int, int, int], unlabelled: int) -> np.ndarray:
    """A label volume with nothing annotated yet: every voxel ``unlabelled``."""
    return np.full(shape_zyx, unlabelled, dtype=np.min_scalar_type(unlabelled))


def cases_to_annotate(task: Task) -> list[Case]:
    """The cases a user still has work on: unlabelled ones (``imagesTs/``), then sparsely labelled ones."""
    return list(task.test_cases) + [c for c in task.cases if c.sparse]
