"""Prompts as network input channels, as DeepEdit and nnInteractive give them: one tensor ``(5, gz, gy, gx)``.

Channels: 0 the image (the region z-scored), 1 positive clicks and scribbles, 2 negative clicks and scribbles, 3 the
box (a filled rectangle on its slice), 4 the object's current mask. Clicks are balls of ``CLICK_RADIUS`` grid
voxels; scribble voxels are marked on the grid (each in the grid voxel that holds it). The same function encodes
for training and for answering a user, so what the network learnt on is what it is shown.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_volseg.interactive.prompts import Box, Click, Prompt, Scribble
from napari_volseg.interactive.region import Region, to_grid, zscore

CHANNELS = ("image", "positive", "negative", "box", "previous")
CLICK_RADIUS = 2.0
"""Radius of a click's ball on the network grid, in grid voxels."""


def _ball(channel: torch.Tensor, centre: np.ndarray, radius: float = CLICK_RADIUS) -> None:
    grid = channel.shape
    lo = np.maximum(np.floor(centre - radius).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, grid)
    if (hi <= lo).any():
        return  # the click lies outside this region
    zz, yy, xx = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij")
    inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2
    view = channel[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    view[torch.from_numpy(inside)] = 1.0


def _voxels(channel: torch.Tensor, points: np.ndarray) -> None:
    idx = np.round(points).astype(int)
    keep = ((idx >= 0) & (idx < np.asarray(channel.shape))).all(axis=1)
    idx = idx[keep]
    channel[idx[:, 0], idx[:, 1], idx[:, 2]] = 1.0


def _box(channel: torch.Tensor, region: Region, prompt: Box) -> None:
    corners = region.to_grid_coords(prompt.points())
    z = int(round(corners[0, 0]))
    if not 0 <= z < channel.shape[0]:
        return
    (y0, x0), (y1, x1) = np.round(corners[0, 1:]).astype(int), np.round(corners[1, 1:]).astype(int)
    y0, x0 = max(y0, 0), max(x0, 0)
    channel[z, y0 : max(y1 + 1, y0 + 1), x0 : max(x1 + 1, x0 + 1)] = 1.0


def encode(image: np.ndarray, region: Region, prompts: list[Prompt], previous: np.ndarray | None) -> torch.Tensor:
    """The network input ``(5, *region.grid)`` for ``prompts`` in ``region`` of ``image`` ``(z, y, x)``;
    ``previous``: the object's current mask on the scan's grid (None: nothing yet)."""
    x = torch.zeros((len(CHANNELS), *region.grid), dtype=torch.float32)
    x[0] = torch.from_numpy(zscore(to_grid(image, region).numpy()))
    for prompt in prompts:
        if isinstance(prompt, Click):
            _ball(x[1 if prompt.positive else 2], region.to_grid_coords(prompt.points())[0])
        elif isinstance(prompt, Scribble):
            _voxels(x[1 if prompt.positive else 2], region.to_grid_coords(prompt.points()))
        elif isinstance(prompt, Box):
            _box(x[3], region, prompt)
    if previous is not None:
        x[4] = to_grid(previous.astype(np.float32, copy=False), region)
    return x
