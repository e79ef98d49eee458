"""The prompts a user gives for one object: clicks, a box on one slice, scribbles; checked and read from JSON.

Every coordinate is a voxel index ``(z, y, x)`` of the scan's canonical array, the array of the plugin's napari layer
for that file (LPS+). A prompt outside the scan, a box of no area or a scribble of another shape is one line
(:class:`PromptError`) and changes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_volseg.errors import VolsegError


class PromptError(VolsegError):
    """A prompt that cannot be used: outside the scan, empty, or of the wrong shape."""


@dataclass(frozen=True)
class Click:
    zyx: tuple[int, int, int]
    positive: bool = True

    def points(self) -> np.ndarray:
        return np.asarray([self.zyx], dtype=np.int64)


@dataclass(frozen=True)
class Box:
    """A rectangle drawn on axial slice ``z``: rows ``y0..y1`` and columns ``x0..x1``, both ends inside."""

    z: int
    yx: tuple[int, int, int, int]

    def points(self) -> np.ndarray:
        y0, x0, y1, x1 = self.yx
        return np.asarray([(self.z, y0, x0), (self.z, y1, x1)], dtype=np.int64)


@dataclass(frozen=True)
class Scribble:
    """Voxels painted as object (``positive``) or background; ``voxels`` is an ``(n, 3)`` array of ``(z, y, x)``."""

    voxels: np.ndarray
    positive: bool = True

    def points(self) -> np.ndarray:
        return self.voxels


Prompt = Click | Box | Scribble


def click(zyx, positive: bool, shape: tuple[int, ...]) -> Click:
    """A checked click: three whole numbers inside ``shape``."""
    point = _voxel(zyx, "a click")
    _inside(point, shape, "the click")
    return Click(point, bool(positive))


def box(z, yx, shape: tuple[int, ...]) -> Box:
    """A checked box: corners in any order, inside the slice; one pixel wide or tall is a line, not a box."""
    try:
        y0, x0, y1, x1 = (int(round(float(v))) for v in yx)
        z = int(round(float(z)))
    except (TypeError, ValueError):
        raise PromptError(f"a box is a slice z and four numbers (y0, x0, y1, x1), not {yx!r}") from None
    y0, y1 = sorted((y0, y1))
    x0, x1 = sorted((x0, x1))
    if y1 - y0 < 2 or x1 - x0 < 2:
        raise PromptError(f"the box is {y1 - y0 + 1} x {x1 - x0 + 1} voxels: draw one at least 3 x 3 around the object")
    _inside((z, y0, x0), shape, "the box")
    _inside((z, y1, x1), shape, "the box")
    return Box(z, (y0, x0, y1, x1))


def scribble(mask_or_voxels, positive: bool, shape: tuple[int, ...]) -> Scribble:
    """A checked scribble from a boolean mask of the scan's shape or from an ``(n, 3)`` list of voxels."""
    data = np.asarray(mask_or_voxels)
    if data.ndim == 3:
        if tuple(data.shape) != tuple(shape):
            raise PromptError(
                f"the scribble's layer is {data.shape}, the scan {tuple(shape)}: paint on the scan's grid"
            )
        voxels = np.argwhere(data > 0)
    elif data.ndim == 2 and data.shape[1] == 3:
        voxels = np.round(data).astype(np.int64)
        for point in voxels[:1]:
            _inside(tuple(point), shape, "the scribble")
        if len(voxels) and ((voxels < 0).any() or (voxels >= np.asarray(shape)[:3]).any()):
            raise PromptError(f"the scribble leaves the scan ({tuple(shape)} voxels)")
    else:
        raise PromptError("a scribble is a painted mask of the scan's shape or a list of (z, y, x) voxels")
    if len(voxels) == 0:
        raise PromptError("the scribble is empty: paint over the object (or the background) first")
    return Scribble(voxels.astype(np.int64), bool(positive))


def _voxel(zyx, what: str) -> tuple[int, int, int]:
    try:
        values = [float(v) for v in zyx]
    except (TypeError, ValueError):
        raise PromptError(f"{what} is three numbers (z, y, x), not {zyx!r}") from None
    if len(values) != 3 or not all(np.isfinite(values)):
        raise PromptError(f"{what} is three numbers (z, y, x), not {zyx!r}")
    return tuple(int(round(v)) for v in values)


def _inside(point, shape, what: str) -> None:
    if any(p < 0 or p >= s for p, s in zip(point, shape[:3], strict=True)):
        raise PromptError(
            f"{what} at (z, y, x) = {tuple(point)} is outside the scan ({' x '.join(map(str, shape[:3]))})"
        )


# -- JSON (``volseg interact --prompts``) ---------------------------------------------------------------------------

ACTIONS = ("click", "box", "scribble", "undo", "reset")


def read_script(path: str | os.PathLike) -> list[dict]:
    """The prompts file of ``volseg interact``: a JSON list (or ``{"prompts": [...]}``) of actions, each one of
    ``{"click": [z, y, x], "positive": true}``, ``{"box": [y0, x0, y1, x1], "z": 40}``,
    ``{"scribble": [[z, y, x], ...], "positive": false}``, ``{"undo": true}``, ``{"reset": true}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptError(f"cannot read prompts {path} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise PromptError(f"{Path(path).name} is not JSON ({exc})") from None
    actions = data.get("prompts") if isinstance(data, dict) else data
    if not isinstance(actions, list) or not actions:
        raise PromptError(f"{Path(path).name} holds no prompts: give a JSON list of clicks, boxes and scribbles")
    for i, action in enumerate(actions, 1):
        kinds = [k for k in ACTIONS if isinstance(action, dict) and k in action]
        if len(kinds) != 1:
            raise PromptError(
                f"prompt {i} of {Path(path).name} must have exactly one of {', '.join(ACTIONS)}: {action!r}"
            )
    return actions
