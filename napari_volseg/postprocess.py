"""Post-processing: keep a class's largest connected component (26-connected), where the data says so.

Two rules decide which classes get it, and the :class:`PostProcess` record says which one did:

- ``"validation"`` (nnU-Net's): :func:`decide` compares, per class, the mean validation Dice of the raw
  predictions with that of the predictions reduced to the class's largest component, and keeps the
  step where it raises the mean (strictly);
- ``"training labels"``: a run without validation cases (the final models, trained on every case)
  has nothing to compare on; :func:`from_training_labels` then keeps the step for a class that every
  training label holding it holds as one connected component (on the label's own grid): an anatomy
  that is one piece in every annotation is one piece in a prediction too.

The record is stored in checkpoints (:func:`to_metadata` / :func:`from_metadata`) and applied by
:class:`~napari_volseg.engine.infer.Predictor` to every prediction (so the CLI, the widgets and
``open_model`` all get it); exported networks cannot run it, so their descriptions state it
(:func:`describe`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from napari_volseg import metrics
from napari_volseg.errors import SettingsError

METADATA_KEY = "postprocess"
RULES = ("", "validation", "training labels")
"""How a decision was made: none made (``""``), on validation predictions, or from the training labels."""
_FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity, as nnU-Net's component removal


@dataclass(frozen=True)
class PostProcess:
    """Which classes keep only their largest connected component, the rule that decided, and its evidence."""

    largest_component: tuple[int, ...] = ()
    rule: str = ""
    """One of :data:`RULES`."""
    cases: int = 0
    """How many cases the decision rests on (validation cases, or training labels)."""
    dice_before: dict[int, float] = field(default_factory=dict)
    """Rule ``"validation"``: mean validation Dice per class of the raw predictions."""
    dice_after: dict[int, float] = field(default_factory=dict)
    """Rule ``"validation"``: mean validation Dice per class reduced to its largest component."""
    pieces: dict[int, int] = field(default_factory=dict)
    """Rule ``"training labels"``: per class, the most connected components any training label holds it in."""

    def __post_init__(self):
        if self.rule not in RULES:
            raise SettingsError(f"postprocess.rule must be one of {', '.join(map(repr, RULES))} (got {self.rule!r})")
        if any(k < 1 for k in self.largest_component):
            raise SettingsError(
                f"postprocess.largest_component must list foreground classes (got {self.largest_component})"
            )


def count_pieces(mask_zyx: np.ndarray) -> int:
    """How many 26-connected components a boolean ``(z, y, x)`` mask holds."""
    return int(ndimage.label(mask_zyx, structure=_FULL)[1])


def one_piece(piece_counts: Iterable[int]) -> bool | None:
    """Whether the foreground is one piece in every label, from each fully labelled case's :func:`count_pieces` of
    its foreground (a cascade's locator then boxes only the largest piece it finds); None without evidence (no
    label holds any foreground). Count only fully labelled cases: a slice-sparse label is many pieces of one organ,
    and a partly painted one may hold one piece of two."""
    counts = [n for n in piece_counts if n > 0]
    return all(n == 1 for n in counts) if counts else None


def one_piece_of_cases(cases: Iterable) -> bool | None:
    """:func:`one_piece` over the fully labelled ones of these task cases (their labels read from disk): how a
    cascade's locator is decided for a checkpoint written before the key existed."""
    return one_piece(count_pieces(case.load_label().data > 0) for case in cases if not case.sparse)


def largest_component(mask_zyx: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean ``(z, y, x)`` mask (the mask itself if it has at most one)."""
    components, n = ndimage.label(mask_zyx, structure=_FULL)
    if n <= 1:
        return mask_zyx.astype(bool, copy=False)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def keep_largest(labels_zyx: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``labels_zyx`` with each of ``classes`` reduced to its largest component (the rest becomes background).

    Each class is labelled inside its own bounding box (``ndimage.find_objects``, no full-grid temporaries): on a
    512 x 512 x 400 CT the full-grid component labels alone took 0.4 GB (int32) beside as much again in masks."""
    if not len(classes):
        return labels_zyx
    out = labels_zyx
    boxes = ndimage.find_objects(labels_zyx)
    for label in classes:
        box = boxes[label - 1] if 0 < label <= len(boxes) else None
        if box is None:
            continue
        mask = labels_zyx[box] == label
        drop = mask & ~largest_component(mask)
        if drop.any():
            if out is labels_zyx:
                out = labels_zyx.copy()
            out[box][drop] = 0
    return out


def apply(labels_zyx: np.ndarray, decision: PostProcess) -> np.ndarray:
    """The decided post-processing applied to uint8 labels ``(z, y, x)`` on any grid."""
    return keep_largest(labels_zyx, decision.largest_component)


def class_dice(pred_zyx: np.ndarray, truth_zyx: np.ndarray, num_classes: int) -> dict[int, tuple[float, float]]:
    """Per foreground class: (Dice of ``pred``, Dice with that class reduced to its largest component)."""
    return {
        label: (
            metrics.dice(pred_zyx, truth_zyx, label)[0],
            metrics.dice(keep_largest(pred_zyx, (label,)), truth_zyx, label)[0],
        )
        for label in range(1, num_classes)
    }


def decide(per_case: Sequence[dict[int, tuple[float, float]]]) -> PostProcess:
    """nnU-Net's rule on validation cases' :func:`class_dice`: a class keeps only its largest component
    where that raises its mean Dice (strictly); no cases, no post-processing."""
    if not per_case:
        return PostProcess()
    labels = sorted(per_case[0])
    before = {k: float(np.mean([c[k][0] for c in per_case])) for k in labels}
    after = {k: float(np.mean([c[k][1] for c in per_case])) for k in labels}
    chosen = tuple(k for k in labels if after[k] > before[k])
    return PostProcess(chosen, "validation", len(per_case), dice_before=before, dice_after=after)


def from_training_labels(labels_zyx: Iterable[np.ndarray], num_classes: int) -> PostProcess:
    """The rule without validation cases: a class keeps only its largest component when every training
    label (uint8 ``(z, y, x)`` on its own grid) that holds the class holds it as one 26-connected
    component. Real annotations have no specks to forgive: every MSD heart (15) and hippocampus (200)
    label holds each class as exactly one component."""
    pieces = {k: 0 for k in range(1, num_classes)}
    cases = 0
    for label in labels_zyx:
        cases += 1
        for k in pieces:
            pieces[k] = max(pieces[k], count_pieces(label == k))
    chosen = tuple(k for k, n in pieces.items() if n == 1)
    return PostProcess(chosen, "training labels", cases, pieces=pieces)


def describe(decision: PostProcess) -> str:
    """One sentence for exported models and model cards: what a user must do to the net's labels."""
    if not decision.largest_component:
        return "none: use the labels as predicted"
    classes = ", ".join(str(k) for k in decision.largest_component)
    return (
        f"keep only the largest 26-connected component of class(es) {classes} (the rest becomes background), "
        f"decided on {decision.rule} ({decision.cases} cases)"
    )


def to_metadata(decision: PostProcess) -> str:
    """The decision as the JSON string stored under :data:`METADATA_KEY` in a checkpoint."""
    return json.dumps(
        {
            "largest_component": list(decision.largest_component),
            "rule": decision.rule,
            "cases": decision.cases,
            "dice_before": {str(k): round(v, 5) for k, v in decision.dice_before.items()},
            "dice_after": {str(k): round(v, 5) for k, v in decision.dice_after.items()},
            "pieces": {str(k): v for k, v in decision.pieces.items()},
        }
    )


def from_metadata(text: str | None) -> PostProcess:
    """The decision stored by :func:`to_metadata`; checkpoints from before it carry none (no
    post-processing). A malformed record raises ``ValueError``, ``TypeError`` or :class:`SettingsError`."""
    if not text:
        return PostProcess()
    d = json.loads(text)
    return PostProcess(
        largest_component=tuple(int(k) for k in d.get("largest_component", ())),
        rule=str(d.get("rule", "")),
        cases=int(d.get("cases", 0)),
        dice_before={int(k): float(v) for k, v in d.get("dice_before", {}).items()},
        dice_after={int(k): float(v) for k, v in d.get("dice_after", {}).items()},
        pieces={int(k): int(v) for k, v in d.get("pieces", {}).items()},
    )
