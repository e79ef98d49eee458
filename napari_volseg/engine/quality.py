"""Whether a model is usable yet: one verdict, read by the Train tab's status, the model chooser, ``volseg train`` and
``volseg predict``, from its validation Dice and how far its predicted volumes are from the truth's.

A model that validated below :data:`USABLE_DICE`, or whose predictions are more than :data:`VOLUME_FACTOR` times too
large or too small, is "not usable yet": early weights mark false positives over the whole chest (validation Dice
0.07-0.10, 20× the atrium's volume) and must not be presented as a model. A model never validated has no verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

USABLE_DICE = 0.5
"""Below this validation Dice a model is not usable yet."""
VOLUME_FACTOR = 3.0
"""A model predicting more than this many times the true volume (or less than its inverse) is not usable yet."""


@dataclass(frozen=True)
class Quality:
    usable: bool | None
    """None: never validated (no verdict)."""
    dice: float | None = None
    volume_ratio: float | None = None
    """Predicted over true foreground volume on the validation cases."""

    @property
    def line(self) -> str:
        """``usable: validation Dice 0.84``, ``not usable yet: Dice 0.09, predicts 20× the true volume; train
        longer``, ``not validated``."""
        if self.usable is None:
            return "not validated: no quality measured"
        parts = [f"Dice {self.dice:.2f}"]
        off = volume_off(self.volume_ratio)
        if off:
            parts.append(off)
        if self.usable:
            return "usable: validation " + ", ".join(parts)
        return "not usable yet: " + ", ".join(parts) + "; train longer"

    @property
    def verdict(self) -> str:
        """The line without the Dice where that is shown beside it: ``usable``, ``not usable yet: predicts 20× the true
        volume; train longer``."""
        if self.usable:
            off = volume_off(self.volume_ratio)
            return "usable" + (f", {off}" if off else "")
        return self.line


def volume_off(ratio: float | None) -> str:
    """``predicts 20× the true volume`` / ``predicts 1/5 of the true volume`` when outside the band, else ''."""
    if ratio is None or not math.isfinite(ratio):
        return ""
    if ratio > VOLUME_FACTOR:
        return f"predicts {ratio:.0f}× the true volume"
    if ratio < 1 / VOLUME_FACTOR:
        return "predicts nothing" if ratio == 0 else f"predicts 1/{1 / ratio:.0f} of the true volume"
    return ""


def judge(dice: float | None, volume_ratio: float | None = None) -> Quality:
    """The verdict on a validation Dice (None or NaN: not validated) and predicted / true volume ratio."""
    if dice is None or not math.isfinite(dice):
        return Quality(usable=None)
    ratio = volume_ratio if volume_ratio is not None and math.isfinite(volume_ratio) else None
    usable = dice >= USABLE_DICE and not volume_off(ratio)
    return Quality(usable=usable, dice=float(dice), volume_ratio=ratio)


def of_history(best_dice: float, step: int, history: list[dict]) -> Quality:
    """The verdict on a checkpoint: its ``best_dice`` and the volume ratio its history recorded at its ``step``."""
    ratio = next((h.get("volume_ratio") for h in reversed(history) if h.get("step") == step), None)
    return judge(best_dice, ratio)


def of_file(path) -> Quality:
    """The verdict on a checkpoint file, from its header alone (no verdict when it is unreadable or not validated)."""
    import json

    from napari_volseg.engine.checkpoint import read_meta

    meta = read_meta(path)
    try:
        history = json.loads(meta.get("history", "[]"))
        dice = json.loads(meta.get("best_dice", "NaN"))
        step = int(meta.get("step", "0"))
    except (ValueError, TypeError):
        return Quality(usable=None)
    if not isinstance(history, list) or not isinstance(dice, (int, float)):
        return Quality(usable=None)
    return of_history(float(dice), step, [h for h in history if isinstance(h, dict)])
