"""Where a prompt is answered: a cube (in mm) around the prompts and the object so far, on a fixed network grid.

A click costs one small forward pass because the network never sees the whole scan: :func:`choose` takes the box
of every prompt of the object and of its current mask, grows it by a margin, makes it a cube of at least the model's
``min_extent_mm`` (the typical object it was trained on) and at most ``max_extent_mm`` (centred on the newest prompt
when the object is larger), and clips it to the scan. :func:`to_grid` brings that region to the network's grid
(``grid`` voxels a side, whatever the scan's spacing), :func:`from_grid` brings the answer back. Training draws its
regions with the same :func:`choose`, so the network sees at inference the views it learnt on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Region:
    """Voxels ``lo .. hi - 1`` of the scan (``(z, y, x)``), shown to the network as ``grid``."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    grid: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.lo, self.hi, strict=True))

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi, strict=True))

    def to_grid_coords(self, points_zyx: np.ndarray) -> np.ndarray:
        """Scan voxel indices -> (fractional) grid indices, voxel centres mapped as ``F.interpolate`` maps them."""
        points = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
        scale = np.asarray(self.grid) / np.asarray(self.shape)
        return (points - np.asarray(self.lo) + 0.5) * scale - 0.5

    def touches(self, mask_in_region: np.ndarray, scan_shape: tuple[int, ...]) -> bool:
        """True when the mask reaches a face of the region that is not the scan's own border (the object goes on)."""
        for axis in range(3):
            first = np.take(mask_in_region, 0, axis=axis).any() and self.lo[axis] > 0
            last = np.take(mask_in_region, -1, axis=axis).any() and self.hi[axis] < scan_shape[axis]
            if first or last:
                return True
        return False


def choose(
    scan_shape: tuple[int, ...],
    spacing: tuple[float, float, float],
    points_zyx: np.ndarray,
    *,
    grid: int,
    min_extent_mm: float,
    max_extent_mm: float,
    focus_zyx: np.ndarray | None = None,
    margin: float = 0.15,
    margin_mm: float = 6.0,
) -> Region:
    """The region answering prompts at ``points_zyx`` (every prompt voxel and the current mask's box corners).

    A cube of side ``max(extent + 2 * max(margin * extent, margin_mm), min_extent_mm)``, at most ``max_extent_mm``
    (then centred on ``focus_zyx``, the newest prompt), clipped to the scan (a region never leaves the scan; near a
    border it is shifted inwards)."""
    points = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
    spacing_arr = np.asarray(spacing, dtype=np.float64)
    shape = np.asarray(scan_shape[:3])
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = (hi - lo + 1) * spacing_arr
    side = float(max((extent + 2 * np.maximum(margin * extent, margin_mm)).max(), min_extent_mm))
    centre = (lo + hi) / 2
    if side > max_extent_mm:
        side = max_extent_mm
        if focus_zyx is not None:
            centre = np.asarray(focus_zyx, dtype=np.float64).reshape(3)
    size = np.minimum(np.maximum(np.round(side / spacing_arr), 1), shape).astype(int)
    start = np.clip(np.round(centre - (size - 1) / 2), 0, shape - size).astype(int)
    return Region(tuple(int(v) for v in start), tuple(int(v) for v in start + size), (grid, grid, grid))


def grown(region: Region, scan_shape: tuple[int, ...], factor: float = 1.5) -> Region:
    """``region`` grown by ``factor`` about its centre (clipped to the scan): the object went on past its faces."""
    lo, hi, shape = np.asarray(region.lo), np.asarray(region.hi), np.asarray(scan_shape[:3])
    size = np.minimum(np.round((hi - lo) * factor), shape).astype(int)
    centre = (lo + hi - 1) / 2
    start = np.clip(np.round(centre - (size - 1) / 2), 0, shape - size).astype(int)
    return Region(tuple(int(v) for v in start), tuple(int(v) for v in start + size), region.grid)


def zscore(crop: np.ndarray) -> np.ndarray:
    """The crop z-scored by its own mean and std (any modality, any region size: the network sees one scale)."""
    crop = crop.astype(np.float32, copy=False)
    std = float(crop.std())
    return (crop - float(crop.mean())) / (std if std > 1e-6 else 1.0)


def to_grid(array: np.ndarray, region: Region, mode: str = "trilinear") -> torch.Tensor:
    """The region of ``array`` ``(z, y, x)`` resampled to ``region.grid``, as a float tensor ``(z, y, x)``."""
    crop = torch.from_numpy(np.ascontiguousarray(array[region.slices], dtype=np.float32))
    if crop.shape == region.grid:
        return crop
    kwargs = {"align_corners": False} if mode == "trilinear" else {}
    return F.interpolate(crop[None, None], size=region.grid, mode=mode, **kwargs)[0, 0]


def from_grid(logits: torch.Tensor, region: Region) -> np.ndarray:
    """The network's two-class logits ``(2, gz, gy, gx)`` back on the region's voxels as the object's margin
    (class 1 minus class 0, float32): the object is where it is above 0."""
    margin = (logits[1] - logits[0])[None, None].float()
    if tuple(margin.shape[2:]) != region.shape:
        margin = F.interpolate(margin, size=region.shape, mode="trilinear", align_corners=False)
    return margin[0, 0].numpy()
