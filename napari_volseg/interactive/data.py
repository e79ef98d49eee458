"""What a promptable net learns from: labelled structures, and simulated interactions on them.

A :class:`Structure` is one object of one scan (a task's class in one case, a synthetic phantom's organ). A
training sample (:func:`sample`) simulates one moment of an interaction the way the bench's annotator and a user
make them: a first click somewhere inside (or a box on a slice through it), or a wrong mask with clicks at its
errors, sometimes with scribbles; the region is chosen by :func:`~napari_volseg.interactive.region.choose` as at
inference. The simulation runs on the network's grid (a 64-cube), so a sample costs milliseconds whatever the scan.
With ``parts`` (the class-agnostic model) a sample's object is sometimes a random connected part of the structure,
so what the clicks say, not the class, defines the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from napari_volseg.interactive import simulate as sim
from napari_volseg.interactive.encode import CHANNELS, _ball, _voxels
from napari_volseg.interactive.prompts import Box, Click
from napari_volseg.interactive.region import choose, to_grid, zscore


@dataclass
class Structure:
    """One object of one scan: ``mask`` (bool) on ``image``'s ``(z, y, x)`` grid of ``spacing`` mm."""

    name: str
    case_id: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    _inside: np.ndarray | None = field(default=None, repr=False)

    @property
    def inside(self) -> np.ndarray:
        """Voxels of the structure at least 2 voxels from its border (where a user clicks first), ``(n, 3)``."""
        if self._inside is None:
            eroded = ndimage.binary_erosion(self.mask, iterations=2)
            self._inside = np.argwhere(eroded if eroded.any() else self.mask)
        return self._inside

    @property
    def extent_mm(self) -> float:
        """The largest side of the structure's box, mm."""
        idx = np.argwhere(self.mask)
        return float(((idx.max(0) - idx.min(0) + 1) * np.asarray(self.spacing)).max())


def structures_of_task(task, case_ids: list[str], classes: list[int] | None = None) -> list[Structure]:
    """Every class (or ``classes``) of each case as a structure; classes absent from a case are skipped."""
    found = []
    for case_id in case_ids:
        case = task.case(case_id)
        image, label = case.load()
        data = image.data if image.data.ndim == 3 else image.data[0]
        values = classes if classes is not None else [v for v in task.labels if v > 0]
        for value in values:
            mask = label.data == value
            if mask.sum() >= 27:
                name = f"{task.name}/{task.labels.get(value, value)}"
                found.append(Structure(name, case_id, data.astype(np.float32), mask, image.spacing))
    return found


def synthetic_structures(count: int, seed: int = 0) -> list[Structure]:
    """The synthetic phantoms' organs (spleen-like CT, left-atrium-like MRI), ``count`` of each kind."""
    from napari_volseg.io import synthetic

    found = []
    for kind, make in (("ct", synthetic.ct_case), ("mri", synthetic.mri_case)):
        spec = synthetic.DEFAULT_SPECS[kind]
        for i in range(count):
            image, label = make(seed + i, spec)
            for value in np.unique(label)[1:]:
                found.append(
                    Structure(
                        f"synthetic-{kind}/{value}",
                        f"{kind}-{seed + i}",
                        image.astype(np.float32),
                        label == value,
                        spec.spacing,
                    )
                )
    return found


# -- simulated interactions ------------------------------------------------------------------------------------------


def _perturbed(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong mask: the truth grown or shrunk, with a missed blob and a false one, or shifted."""
    mask = truth.copy()
    ops = rng.choice(["grow", "shrink", "miss", "extra", "shift"], size=rng.integers(1, 3), replace=False)
    for op in ops:
        if op == "grow":
            mask = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 4)))
        elif op == "shrink":
            shrunk = ndimage.binary_erosion(mask, iterations=int(rng.integers(1, 4)))
            mask = shrunk if shrunk.any() else mask
        elif op in ("miss", "extra"):
            idx = np.argwhere(mask if op == "miss" else ndimage.binary_dilation(mask, iterations=4) & ~mask)
            if len(idx):
                blob = torch.zeros(mask.shape)
                _ball(blob, idx[rng.integers(len(idx))].astype(float), float(rng.uniform(3, 10)))
                mask = mask & ~(blob.numpy() > 0) if op == "miss" else mask | (blob.numpy() > 0)
        else:
            mask = np.roll(mask, tuple(int(v) for v in rng.integers(-3, 4, size=3)), axis=(0, 1, 2))
    return mask


def _part(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random connected part of ``truth``: its intersection with a ball around one of its voxels."""
    idx = np.argwhere(truth)
    extent = float((idx.max(0) - idx.min(0) + 1).max())
    ball = torch.zeros(truth.shape)
    _ball(ball, idx[rng.integers(len(idx))].astype(float), float(rng.uniform(0.3, 0.6) * extent))
    part = truth & (ball.numpy() > 0)
    labelled, count = ndimage.label(part)
    if count == 0:
        return truth
    largest = labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
    return largest if largest.sum() >= 0.05 * truth.sum() and largest.sum() >= 100 else truth


def _scribble(mask: np.ndarray, rng: np.random.Generator, length: int = 12) -> np.ndarray:
    """A short random stroke on one axial slice inside ``mask``, as grid voxels ``(n, 3)``."""
    idx = np.argwhere(mask)
    if not len(idx):
        return np.zeros((0, 3), int)
    point = idx[rng.integers(len(idx))].astype(int)
    stroke = [point.copy()]
    for _ in range(length):
        step = np.array([0, *rng.integers(-1, 2, size=2)])
        nxt = point + step
        if (nxt >= 0).all() and (nxt < mask.shape).all() and mask[tuple(nxt)]:
            point = nxt
            stroke.append(point.copy())
    return np.asarray(stroke)


def sample(
    structure: Structure,
    rng: np.random.Generator,
    *,
    grid: int,
    min_extent_mm: tuple[float, float],
    max_extent_mm: float,
    parts: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One simulated moment of an interaction: the network input ``(5, g, g, g)`` and the object ``(g, g, g)``."""
    scenario = rng.choice(["click", "box", "correct"], p=[0.45, 0.2, 0.35])
    extent = float(rng.uniform(*min_extent_mm))
    if scenario == "click":
        anchor = structure.inside[rng.integers(len(structure.inside))][None]
    else:
        idx = np.argwhere(structure.mask)
        anchor = np.stack([idx.min(0), idx.max(0)])
    region = choose(
        structure.image.shape, structure.spacing, anchor, grid=grid, min_extent_mm=extent, max_extent_mm=max_extent_mm
    )
    truth = to_grid(structure.mask.astype(np.float32), region).numpy() > 0.5
    if parts and truth.sum() > 400 and rng.random() < 0.2:
        truth = _part(truth, rng)
    x = torch.zeros((len(CHANNELS), grid, grid, grid))
    x[0] = torch.from_numpy(zscore(to_grid(structure.image, region).numpy()))
    if not truth.any():
        return x, torch.from_numpy(truth)
    previous = None
    if scenario == "click":
        inside = np.argwhere(ndimage.binary_erosion(truth) if ndimage.binary_erosion(truth).any() else truth)
        centre = np.asarray(sim.first_click(truth, (1, 1, 1)).zyx)
        first = centre if rng.random() < 0.4 else inside[rng.integers(len(inside))]
        _ball(x[1], first.astype(float))
        extra = int(rng.choice([0, 0, 1, 2, 3]))
    elif scenario == "box":
        _box_on_grid(x[3], truth, rng)
        extra = int(rng.choice([0, 0, 1, 2]))
    else:
        extra = int(rng.integers(1, 4))
    if extra:
        previous = _perturbed(truth, rng)
        for _ in range(extra):
            click = sim.next_click(previous, truth, (1, 1, 1))
            if click is None:
                break
            _ball(x[1 if click.positive else 2], np.asarray(click.zyx, float))
            if rng.random() < 0.5:  # an earlier round fixed that error partly
                fix = torch.zeros(truth.shape)
                _ball(fix, np.asarray(click.zyx, float), float(rng.uniform(2, 6)))
                near = fix.numpy() > 0
                previous = np.where(near, truth, previous)
        x[4] = torch.from_numpy(previous.astype(np.float32))
    if rng.random() < 0.15:
        _voxels(x[1], _scribble(ndimage.binary_erosion(truth) | (truth & (truth.sum() < 200)), rng))
    if rng.random() < 0.1:
        ring = ndimage.binary_dilation(truth, iterations=4) & ~ndimage.binary_dilation(truth, iterations=1)
        _voxels(x[2], _scribble(ring, rng))
    return x, torch.from_numpy(truth)


def _box_on_grid(channel: torch.Tensor, truth: np.ndarray, rng: np.random.Generator) -> None:
    areas = truth.sum(axis=(1, 2))
    slices = np.nonzero(areas >= 0.3 * areas.max())[0]
    z = int(slices[rng.integers(len(slices))])
    ys, xs = np.nonzero(truth[z])
    jitter = rng.integers(-2, 3, size=4)
    y0, x0 = max(int(ys.min()) + jitter[0], 0), max(int(xs.min()) + jitter[1], 0)
    y1, x1 = int(ys.max()) + jitter[2], int(xs.max()) + jitter[3]
    channel[z, y0 : max(y1 + 1, y0 + 1), x0 : max(x1 + 1, x0 + 1)] = 1.0


__all__ = ["Box", "Click", "Structure", "sample", "structures_of_task", "synthetic_structures"]
