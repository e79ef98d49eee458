"""Sparse labels: some voxels left unannotated (the task's ``unlabelled`` value), e.g. only some slices."""

from __future__ import annotations

import math

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


def annotation_queue(task: Task, ranking: list) -> list[tuple[str, float, float]]:
    """The cases left to annotate as ``(case id, uncertainty, predicted mL)`` rows: the ranked ones first in ranked
    order (``ranking``: :func:`~napari_volseg.annotate.uncertainty.rank_cases`' items), then the others (NaN)."""
    left = [c.id for c in cases_to_annotate(task)]
    ranked = [r for r in ranking if r.case_id in left]
    rows = [(r.case_id, r.score, r.predicted_ml) for r in ranked]
    return rows + [(c, math.nan, math.nan) for c in left if c not in {r.case_id for r in ranked}]


def busiest_slice(labels_zyx: np.ndarray, unlabelled: int) -> int | None:
    """The axial slice holding the most annotated foreground (where annotating starts); None if there is none."""
    per_slice = ((labels_zyx > 0) & (labels_zyx != unlabelled)).sum(axis=(1, 2))
    return int(np.argmax(per_slice)) if per_slice.any() else None


def suggestion(task: Task, case_id: str, checkpoint, unlabelled: int) -> np.ndarray:
    """What a case's annotation starts from: ``checkpoint``'s prediction of it, or with ``checkpoint`` None nothing
    annotated yet (every voxel ``unlabelled``: painting a few slices from scratch)."""
    case = task.case(case_id)
    if checkpoint is None:
        return unlabelled_volume(case.geometry().shape_zyx, unlabelled)
    from napari_volseg.engine.infer import Predictor  # torch: only when a model predicts

    predictor = Predictor(checkpoint)
    try:
        return predictor.predict(case.load_image()).labels
    finally:
        predictor.release()
