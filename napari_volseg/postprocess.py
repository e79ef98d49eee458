"""Post-processing decided the nnU-Net way: keep each class's largest connected component only where
validation predictions show that it helps.

:func:`decide` compares, per class, the mean validation Dice of the raw predictions with that of the
predictions reduced to the class's largest connected component (26-connected); the classes where
the reduction raises the mean are kept in a :class:`PostProcess`, stored in the checkpoint
(:func:`to_metadata` / :func:`from_metadata`) and applied by :class:`~napari_volseg.engine.infer.Predictor`
to every prediction (so the CLI, the widgets and the exports all get it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from napari_volseg import metrics

METADATA_KEY = "postprocess"
_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity, as nnU-Net's component removal


@dataclass(frozen=True)
class PostProcess:
    """Which classes keep only their largest connected component, and the validation evidence."""

    largest_component: tuple[int, ...] = ()
    dice_before: dict[int, float] = field(default_factory=dict)
    """Mean validation Dice per class of the raw predictions."""
    dice_after: dict[int, float] = field(default_factory=dict)
    """Mean validation Dice per class with the class reduced to its largest component."""
    cases: int = 0
    """How many validation cases the decision rests on (0: none made)."""


def largest_component(mask_zyx: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean ``(z, y, x)`` mask (the mask itself if it has at most one)."""
    components, n = ndimage.label(mask_zyx, structure=_FULL)
    if n <= 1:
        return mask_zyx.astype(bool, copy=False)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def keep_largest(labels_zyx: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``labels_zyx`` with each of ``classes`` reduced to its largest component (the rest becomes background)."""
    if not len(classes):
        return labels_zyx
    out = labels_zyx.copy()
    for label in classes:
        mask = labels_zyx == label
        if mask.any():
            out[mask & ~largest_component(mask)] = 0
    return out


def apply(labels_zyx: np.ndarray, decision: PostProcess) -> np.ndarray:
    """The decided post-processing applied to uint8 labels ``(z, y, x)`` on any grid."""
    return keep_largest(labels_zyx, decision.largest_component)


def class_dice(pred_zyx: np.ndarray, truth_zyx: np.ndarray, num_classes: int) -> dict[int, tuple[float, float]]:
    """Per foreground class: (Dice of ``pred``, Dice with that class reduced to its largest component)."""
    out = {}
    for label in range(1, num_classes):
        raw, _ = metrics.dice(pred_zyx, truth_zyx, label)
        mask = pred_zyx == label
        kept = largest_component(mask) if mask.any() else mask
        both = int(kept.sum()) + int((truth_zyx == label).sum())
        after = 2.0 * int(np.logical_and(kept, truth_zyx == label).sum()) / both if both else 1.0
        out[label] = (raw, after)
    return out


def decide(per_case: Sequence[dict[int, tuple[float, float]]]) -> PostProcess:
    """nnU-Net's rule on validation cases' :func:`class_dice`: a class keeps only its largest component
    where that raises its mean Dice (strictly); no cases, no post-processing."""
    if not per_case:
        return PostProcess()
    labels = sorted(per_case[0])
    before = {k: float(np.mean([c[k][0] for c in per_case])) for k in labels}
    after = {k: float(np.mean([c[k][1] for c in per_case])) for k in labels}
    chosen = tuple(k for k in labels if after[k] > before[k])
    return PostProcess(chosen, before, after, len(per_case))


def to_metadata(decision: PostProcess) -> str:
    """The decision as the JSON string stored under :data:`METADATA_KEY` in a checkpoint."""
    return json.dumps(
        {
            "largest_component": list(decision.largest_component),
            "dice_before": {str(k): round(v, 5) for k, v in decision.dice_before.items()},
            "dice_after": {str(k): round(v, 5) for k, v in decision.dice_after.items()},
            "cases": decision.cases,
        }
    )


def from_metadata(text: str | None) -> PostProcess:
    """The decision stored by :func:`to_metadata`; checkpoints from before it carry none (no post-processing)."""
    if not text:
        return PostProcess()
    d = json.loads(text)
    return PostProcess(
        largest_component=tuple(int(k) for k in d.get("largest_component", ())),
        dice_before={int(k): float(v) for k, v in d.get("dice_before", {}).items()},
        dice_after={int(k): float(v) for k, v in d.get("dice_after", {}).items()},
        cases=int(d.get("cases", 0)),
    )
