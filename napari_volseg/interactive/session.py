"""One object segmented by prompts: each click, box or scribble gives the object's whole 3D mask back.

The session keeps the object's prompts and its current mask. Each interaction answers on a region around the
prompts and the mask so far (:mod:`.region`); where the answer reaches the region's faces the region grows and is
answered again (at most ``MAX_PASSES`` passes), so an object larger than the model's usual view is followed. Outside
the region the mask stays as it was. Every interaction can be undone; a bad prompt changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from napari_volseg.interactive import prompts as p
from napari_volseg.interactive.region import Region, choose, grown

LOCAL_MM = 4.0
"""A click changes the parts of the mask it touches: the changed regions within this distance of it."""


FOLLOW_MM = 15.0
"""How far from a click its own threshold reaches (:func:`follow_click`)."""


def as_margin(answer: np.ndarray) -> np.ndarray:
    """A segmenter's answer as a margin (object above 0): float margins as they are, a bool mask as +1 / -1."""
    answer = np.asarray(answer)
    return np.where(answer, 1.0, -1.0).astype(np.float32) if answer.dtype == bool else answer


def follow_click(margin: np.ndarray, prompt: p.Prompt, region: Region, spacing) -> np.ndarray:
    """The object mask of a region's ``margin``, obeying a click the answer disagrees with.

    A positive click on a voxel the answer leaves out says: this is the object, and so is every voxel near it (within
    ``FOLLOW_MM``) and connected to it that the answer rates at least as likely; a negative click on a voxel the answer
    keeps takes out likewise every connected voxel rated at most as likely. The click sets the threshold where it
    lands. (The heart's promptable net, warm-started from msd-heart, left a positive click in a 5,400-voxel missed
    part outside its mask three times running; a click is the annotator's word.)"""
    inner = margin > 0
    if not isinstance(prompt, p.Click):
        return inner
    local = np.asarray(prompt.zyx) - np.asarray(region.lo)
    if (local < 0).any() or (local >= np.asarray(region.shape)).any():
        return inner
    level = float(margin[tuple(local)])
    if (level > 0) == prompt.positive:
        return inner
    radius = np.ceil(FOLLOW_MM / np.asarray(spacing)).astype(int)
    lo, hi = np.maximum(local - radius, 0), np.minimum(local + radius + 1, region.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    near = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, local, spacing, strict=True)) <= FOLLOW_MM**2
    side = (margin[box] >= level) if prompt.positive else (margin[box] <= level)
    labelled, _ = ndimage.label(side & near)
    part = labelled == labelled[tuple(local - lo)]
    inner[box] = inner[box] | part if prompt.positive else inner[box] & ~part
    return inner


def local_change(before: np.ndarray, after: np.ndarray, prompt: p.Prompt, region: Region, spacing) -> np.ndarray:
    """``after`` where it differs from ``before`` in a connected region touching the click, ``before`` elsewhere.

    A corrective click is answered with a new mask of the whole region; applied as it is, the network's coarser grid
    would also move the borders far from the click that were already right (a task model's prediction at the scan's
    own resolution). Only the changes connected to the click are applied: the missed lobe a positive click lands in,
    the false blob a negative one marks. Without a mask before, and for boxes and scribbles, ``after`` is taken whole."""
    if not isinstance(prompt, p.Click) or not before.any():
        return after
    changed = before != after
    labelled, count = ndimage.label(changed)
    if count == 0:
        return before
    local = np.asarray(prompt.zyx) - np.asarray(region.lo)
    radius = np.maximum(np.ceil(LOCAL_MM / np.asarray(spacing)), 1).astype(int)
    lo, hi = np.maximum(local - radius, 0), np.minimum(local + radius + 1, changed.shape)
    touched = np.unique(labelled[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
    touched = touched[touched > 0]
    if len(touched) == 0:
        return before
    keep = np.isin(labelled, touched)
    return np.where(keep, after, before)


CLICK_MM = 2.0
"""A click's own voxels (within this distance) always take its side: an answer that ignored a click would leave the
annotator clicking the same voxel for ever."""


def ball_slices(zyx, spacing, shape) -> tuple[slice, slice, slice]:
    """The box of voxels within ``CLICK_MM`` of a click (at least the clicked voxel), clipped to the scan."""
    radius = np.floor(CLICK_MM / np.asarray(spacing)).astype(int)
    return tuple(slice(max(c - r, 0), min(c + r + 1, n)) for c, r, n in zip(zyx, radius, shape, strict=True))


class Segmenter(Protocol):
    name: str
    grid: int
    min_extent_mm: float
    max_extent_mm: float

    def segment(
        self, image: np.ndarray, region: Region, prompts: list[p.Prompt], previous: np.ndarray | None
    ) -> np.ndarray: ...


MAX_PASSES = 3


@dataclass(frozen=True)
class Answer:
    """How the last interaction was answered: its region, passes (1 + growths) and seconds."""

    region: Region
    passes: int
    seconds: float


class InteractiveSession:
    """Prompts for one object on ``image`` ``(z, y, x)`` with voxel ``spacing`` (mm), answered by ``segmenter``."""

    def __init__(self, segmenter: Segmenter, image: np.ndarray, spacing=(1.0, 1.0, 1.0), name: str = ""):
        image = np.asarray(image)
        if image.ndim != 3:
            raise p.PromptError(f"prompts need one 3D image (z, y, x); this one has shape {image.shape}")
        self.segmenter = segmenter
        self.image = image.astype(np.float32, copy=False)
        self.spacing = tuple(float(s) for s in spacing)
        self.name = name
        self.prompts: list[p.Prompt] = []
        self.mask = np.zeros(image.shape, bool)
        self.last: Answer | None = None
        self.geometry = None
        """The scan's geometry where it was read from a file (labels are written back on its grid)."""
        self._history: list[tuple[list[p.Prompt], np.ndarray]] = []

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)

    # -- the contract ---------------------------------------------------------------------------------------------

    def click(self, zyx, positive: bool = True) -> np.ndarray:
        return self._answer(p.click(zyx, positive, self.shape))

    def box(self, z, yx) -> np.ndarray:
        return self._answer(p.box(z, yx, self.shape))

    def scribble(self, mask, positive: bool = True) -> np.ndarray:
        return self._answer(p.scribble(mask, positive, self.shape))

    def start_from(self, mask) -> np.ndarray:
        """Correct ``mask`` (e.g. a task model's prediction; non-zero is the object) with the prompts that follow."""
        mask = np.asarray(mask)
        if mask.shape != self.shape:
            raise p.PromptError(
                f"the mask is {mask.shape}, the scan {self.shape}: start from a mask on the scan's grid"
            )
        self._push()
        self.prompts, self.mask = [], mask > 0
        return self.result()

    def undo(self) -> np.ndarray:
        if not self._history:
            raise p.PromptError("nothing to undo: no prompt given yet")
        self.prompts, self.mask = self._history.pop()
        return self.result()

    def reset(self) -> np.ndarray:
        self._push()
        self.prompts, self.mask = [], np.zeros(self.shape, bool)
        return self.result()

    def result(self) -> np.ndarray:
        """The object's current mask, ``uint8`` 0/1 ``(z, y, x)``."""
        return self.mask.astype(np.uint8)

    @property
    def counts(self) -> dict[str, int]:
        """Prompts of the current object by kind (the edit report counts them)."""
        kinds = {"clicks": 0, "boxes": 0, "scribbles": 0}
        for prompt in self.prompts:
            kinds[{p.Click: "clicks", p.Box: "boxes", p.Scribble: "scribbles"}[type(prompt)]] += 1
        return kinds

    # -- answering ------------------------------------------------------------------------------------------------

    def _push(self) -> None:
        self._history.append((list(self.prompts), self.mask.copy()))

    def region_for(self, prompt: p.Prompt, prompts: list[p.Prompt]) -> Region:
        points = [q.points() for q in prompts]
        if self.mask.any():
            nonzero = [np.nonzero(self.mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
            points.append(np.asarray([[n[0] for n in nonzero], [n[-1] for n in nonzero]]))
        seg = self.segmenter
        return choose(
            self.shape,
            self.spacing,
            np.concatenate(points),
            grid=seg.grid,
            min_extent_mm=seg.min_extent_mm,
            max_extent_mm=seg.max_extent_mm,
            focus_zyx=prompt.points().mean(axis=0),
        )

    def _answer(self, prompt: p.Prompt) -> np.ndarray:
        start = time.perf_counter()
        prompts = [*self.prompts, prompt]
        region = self.region_for(prompt, prompts)
        previous = self.mask if self.mask.any() else None
        passes = 0
        while True:
            passes += 1
            margin = as_margin(self.segmenter.segment(self.image, region, prompts, previous))
            inner = margin > 0
            bigger = grown(region, self.shape)
            side_mm = max(s * sp for s, sp in zip(bigger.shape, self.spacing, strict=True))
            if (
                not getattr(self.segmenter, "grows", True)
                or passes >= MAX_PASSES
                or not region.touches(inner, self.shape)
                or bigger == region
                or side_mm > self.segmenter.max_extent_mm * 1.01
            ):
                break
            region = bigger
        inner = follow_click(margin, prompt, region, self.spacing)
        self._push()
        mask = self.mask.copy()
        mask[region.slices] = local_change(self.mask[region.slices], inner, prompt, region, self.spacing)
        if isinstance(prompt, p.Click):  # what the user clicked is what they said, whatever the answer
            mask[ball_slices(prompt.zyx, self.spacing, self.shape)] = prompt.positive
        self.prompts, self.mask = prompts, mask
        self.last = Answer(region, passes, time.perf_counter() - start)
        return self.result()


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The smallest box holding every voxel where ``before`` and ``after`` differ; None where none does."""
    changed = before != after
    spans = [np.nonzero(changed.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    if any(len(span) == 0 for span in spans):
        return None
    return tuple(slice(int(span[0]), int(span[-1]) + 1) for span in spans)


def merge(
    labels: np.ndarray, under: np.ndarray, before: np.ndarray, after: np.ndarray, value: int, free=(0,)
) -> np.ndarray:
    """``labels`` with one object's mask changed from ``before`` to ``after`` (bool, same shape), as label ``value``.

    ``under``: the labels as they were when the object was started. The object takes only voxels that were ``free``
    (background, or the unlabelled value of a sparse annotation) or its own value then: a finished object, or a
    painted class, stays as it is, whatever the new mask says. Voxels the object leaves get back what they held
    (background where it was the object's own prediction). A copy; ``labels`` is not changed."""
    out = np.array(labels, copy=True)
    left = before & ~after & (labels == value)
    out[left] = np.where(under[left] == value, 0, under[left])
    out[after & np.isin(under, [*free, value])] = value
    return out
