"""Per-volume, per-class segmentation metrics on the source grid.

Dice is computed here from voxel counts rather than with MONAI's ``DiceMetric`` because its
definition for empty masks must be explicit: when neither the prediction nor the truth holds a
class, Dice is 1.0 and the result is flagged ``empty``. HD95 is MONAI's
``compute_hausdorff_distance`` in mm (spacing-aware); it is NaN when either mask is empty.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassScore:
    label: int
    dice: float
    hd95: float
    empty: bool
    pred_ml: float
    true_ml: float


def dice(pred: np.ndarray, truth: np.ndarray, label: int = 1) -> tuple[float, bool]:
    """Dice of one class; ``(1.0, True)`` when the class is absent from both."""
    p = pred == label
    t = truth == label
    denom = int(p.sum()) + int(t.sum())
    if denom == 0:
        return 1.0, True
    return 2.0 * int(np.logical_and(p, t).sum()) / denom, False


def hd95(pred: np.ndarray, truth: np.ndarray, label: int, spacing: tuple[float, float, float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (MONAI); NaN if either mask is empty."""
    p = pred == label
    t = truth == label
    if not p.any() or not t.any():
        return float("nan")
    import torch
    from monai.metrics import compute_hausdorff_distance

    # crop to the union's bounding box (+1 voxel) so the distance transforms stay small
    union = p | t
    box = []
    for axis in range(3):
        hits = np.nonzero(union.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        box.append(slice(max(0, hits[0] - 1), hits[-1] + 2))
    box = tuple(box)
    pt = torch.from_numpy(p[box][None, None].astype(np.float32))
    tt = torch.from_numpy(t[box][None, None].astype(np.float32))
    with warnings.catch_warnings():  # MONAI >= 1.5 warns about an argument its own code passes (every evaluate run)
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        value = compute_hausdorff_distance(pt, tt, percentile=95, spacing=list(spacing))
    return float(value.item())


def score_case(
    pred: np.ndarray,
    truth: np.ndarray,
    num_classes: int,
    spacing: tuple[float, float, float],
    with_hd95: bool = True,
) -> list[ClassScore]:
    """Scores for classes 1..num_classes-1 of one volume, both arrays ``(z, y, x)`` on the same grid."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    scores = []
    for label in range(1, num_classes):
        d, empty = dice(pred, truth, label)
        scores.append(
            ClassScore(
                label=label,
                dice=d,
                hd95=hd95(pred, truth, label, spacing) if with_hd95 else float("nan"),
                empty=empty,
                pred_ml=float((pred == label).sum()) * voxel_ml,
                true_ml=float((truth == label).sum()) * voxel_ml,
            )
        )
    return scores


def mean_dice(scores: list[ClassScore]) -> float:
    return float(np.mean([s.dice for s in scores])) if scores else float("nan")


def error_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """uint8 ``(z, y, x)``: 1 where predicted but not true (false positive), 2 where true but missed
    (false negative), 0 elsewhere; a voxel given the wrong foreground class counts as a false positive."""
    out = np.zeros(pred.shape, dtype=np.uint8)
    out[(pred > 0) & (truth != pred)] = 1
    out[(truth > 0) & (pred == 0)] = 2
    return out


def expected_edit_share(probabilities: np.ndarray) -> float:
    """The expected edit share (``annotate.uncertainty``'s ranking, the cohort manifest's confidence): expected wrong
    voxels / predicted foreground voxels, from softmax probabilities on any grid:
    ``(z, y, x)`` foreground probability of a two-class task, or ``(classes, z, y, x)``."""
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim == 3:
        wrong = np.minimum(p, 1.0 - p)
        foreground = int((p >= 0.5).sum())
    else:
        top = p.max(axis=0)
        wrong = 1.0 - top
        foreground = int((p.argmax(axis=0) != 0).sum())
    if foreground == 0:
        return math.inf
    return float(wrong.sum(dtype=np.float64)) / foreground
