"""What the annotator changed between a suggested label and the accepted one: the work the model saved."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EditStats:
    """Edits of one case: voxels whose label changed (unlabelled voxels not counted), axial (z) slices
    holding any of them, and the changed voxels as a share of the final label's foreground voxels."""

    voxels: int
    slices: int
    slices_total: int
    label_voxels: int

    @property
    def share(self) -> float:
        return self.voxels / self.label_voxels if self.label_voxels else (0.0 if self.voxels == 0 else float("inf"))

    def summary(self) -> str:
        share = f"{100 * self.share:.1f}% of the final label" if self.label_voxels else "the final label is empty"
        return f"edited {self.voxels:,} voxels on {self.slices} of {self.slices_total} slices ({share})"


def edit_stats(before_zyx: np.ndarray, after_zyx: np.ndarray, unlabelled: int | None = None) -> EditStats:
    """Compare the suggested labels ``before_zyx`` with the accepted ``after_zyx`` (same ``(z, y, x)`` shape)."""
    before, after = np.asarray(before_zyx), np.asarray(after_zyx)
    if before.shape != after.shape:
        raise ValueError(f"shapes differ: {before.shape} vs {after.shape}")
    annotated = np.ones(after.shape, bool) if unlabelled is None else after != unlabelled
    changed = (before != after) & annotated
    return EditStats(
        voxels=int(changed.sum()),
        slices=int(changed.any(axis=(1, 2)).sum()),
        slices_total=int(after.shape[0]),
        label_voxels=int(((after > 0) & annotated).sum()),
    )


def accept_report(case_id: str, stats: EditStats, prompts: dict[str, int], sparse: bool) -> str:
    """The line an accept leaves: the edits against the suggestion, the prompts used ("3 clicks"), sparse or not."""
    used = ", ".join(f"{n} {kind}" for kind, n in prompts.items() if n)
    return (
        f"accepted {case_id}: {stats.summary()}"
        + (f"; prompts: {used}" if used else "")
        + (" — sparse" if sparse else "")
    )
