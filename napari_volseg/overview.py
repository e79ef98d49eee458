"""A picture of a case without a window: an axial slice with ground truth (and prediction) outlines.

Used by ``volseg demo --headless`` and the CLI's reports, where no OpenGL canvas exists. Colours:
green = ground truth, magenta = prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage


def _window(slice_: np.ndarray, ct: bool) -> np.ndarray:
    lo, hi = (-160.0, 240.0) if ct else np.percentile(slice_, [0.5, 99.5])
    return np.clip((slice_.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def render_case(
    image_zyx: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    truth: np.ndarray | None = None,
    prediction: np.ndarray | None = None,
    ct: bool = False,
    height: int = 384,
) -> np.ndarray:
    """RGB uint8 picture: the axial slice with most foreground beside a coronal slice, at true aspect."""
    ref = truth if truth is not None else prediction
    if ref is not None and ref.any():
        z = int(np.argmax((ref > 0).sum(axis=(1, 2))))
        y = int(np.argmax((ref > 0).sum(axis=(0, 2))))
    else:
        z, y = image_zyx.shape[0] // 2, image_zyx.shape[1] // 2
    panels = []
    for axis, index in ((0, z), (1, y)):
        grey = _window(np.take(image_zyx, index, axis=axis), ct)
        rgb = np.stack([grey] * 3, axis=-1)
        for mask, colour in ((truth, (0.1, 1.0, 0.2)), (prediction, (1.0, 0.2, 1.0))):
            if mask is not None:
                rgb[_outline(np.take(mask, index, axis=axis) > 0)] = colour
        rows_mm = spacing_zyx[1] if axis == 0 else spacing_zyx[0]
        cols_mm = spacing_zyx[2]
        zoom_r = height / rgb.shape[0]
        zoom_c = zoom_r * cols_mm / rows_mm
        rgb = ndimage.zoom(rgb, (zoom_r, zoom_c, 1), order=0)
        if axis == 1:
            rgb = rgb[::-1]  # superior up in the coronal view
        panels.append(rgb)
    gap = np.ones((height, 8, 3), dtype=np.float32)
    h = min(p.shape[0] for p in panels)
    picture = np.concatenate([panels[0][:h], gap[:h], panels[1][:h]], axis=1)
    return (picture * 255).astype(np.uint8)


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, picture)
    return path
