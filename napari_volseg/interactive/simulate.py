"""The field's simulated annotator (DeepEdit, nnInteractive, the interactive challenges): where the next click goes.

The first click is the object's interior voxel farthest from its border; each next click is at the centre (the
voxel farthest from its border) of the largest error region, positive in a missed part, negative in a false one. A
box is the object's 2D bounding box on the slice where it is largest. Distances are in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_volseg.interactive.prompts import Box, Click


def _centre(mask: np.ndarray, spacing) -> tuple[int, int, int]:
    """The voxel of ``mask`` farthest from its border (computed on the mask's box only)."""
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    padded = np.pad(mask[box], 1)
    distance = ndimage.distance_transform_edt(padded, sampling=spacing)
    inner = np.unravel_index(int(np.argmax(distance)), padded.shape)
    return tuple(int(i - 1 + s.start) for i, s in zip(inner, box, strict=True))


def first_click(truth: np.ndarray, spacing) -> Click:
    return Click(_centre(truth.astype(bool), spacing), True)


def next_click(prediction: np.ndarray, truth: np.ndarray, spacing) -> Click | None:
    """The click at the centre of the largest error region; None when the prediction is exact."""
    truth, prediction = truth.astype(bool), prediction.astype(bool)
    best, best_size, positive = None, 0, True
    for errors, is_missed in ((truth & ~prediction, True), (prediction & ~truth, False)):
        labelled, count = ndimage.label(errors)
        if count == 0:
            continue
        sizes = np.bincount(labelled.ravel())[1:]
        largest = int(np.argmax(sizes))
        if sizes[largest] > best_size:
            best, best_size, positive = labelled == largest + 1, int(sizes[largest]), is_missed
    if best is None:
        return None
    return Click(_centre(best, spacing), positive)


def box_of(truth: np.ndarray) -> Box:
    """The object's bounding rectangle on the axial slice where its area is largest."""
    truth = truth.astype(bool)
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    ys, xs = np.nonzero(truth[z])
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    if y1 - y0 < 2:
        y1 = y0 + 2
    if x1 - x0 < 2:
        x1 = x0 + 2
    return Box(z, (y0, x0, y1, x1))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def clicks_to_reach(dices: list[float], threshold: float, cap: int = 20) -> int:
    """NoC@threshold: the clicks after which Dice first reached ``threshold`` (``dices[k]`` after ``k + 1`` clicks);
    ``cap`` when it never did within the clicks given."""
    for k, value in enumerate(dices[:cap]):
        if value >= threshold:
            return k + 1
    return cap
