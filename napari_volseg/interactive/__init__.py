"""Interactive 3D segmentation: clicks, boxes and scribbles answered with the object's whole mask.

The contract the widgets, the bench and outside scripts share::

    from napari_volseg.interactive import open_interactive
    s = open_interactive("msd-heart-interactive", "la_004.nii.gz")   # or a checkpoint path, or "random-walker"
    mask = s.click((z, y, x), positive=True)    # (z, y, x) uint8, the array of the plugin's layer (LPS+)
    s.box(z, (y0, x0, y1, x1)); s.scribble(mask, positive=False); s.start_from(mask); s.undo(); s.reset()

No Qt here: napari's tools translate canvas prompts into these calls.
"""

from __future__ import annotations

import os

import numpy as np

from napari_volseg.interactive.prompts import PromptError
from napari_volseg.interactive.session import InteractiveSession, Segmenter
from napari_volseg.interactive.walker import NAME as RANDOM_WALKER

__all__ = ["RANDOM_WALKER", "InteractiveSession", "PromptError", "open_interactive", "open_segmenter"]


def open_segmenter(model) -> Segmenter:
    """The prompt answerer of ``model``: ``"random-walker"``, a zoo name (``msd-heart-interactive``), a checkpoint
    path, or an opened segmenter (returned as it is). One-line errors for anything else."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    if str(model) == RANDOM_WALKER:
        from napari_volseg.interactive.walker import RandomWalker

        return RandomWalker()
    from napari_volseg.engine import checkpoint
    from napari_volseg.interactive.net import PromptNet
    from napari_volseg.zoo.registry import resolve

    path = resolve(model)
    return PromptNet(checkpoint.load(path), name=str(model))


def open_interactive(model, image, spacing=None, *, channel: int | None = None, series: str | None = None):
    """An :class:`InteractiveSession` on ``image``: a scan's path (read by the project's reader: NIfTI, NRRD,
    MetaImage, a DICOM series), a loaded :class:`~napari_volseg.io.geometry.Volume`, or a ``(z, y, x)`` array with
    its ``spacing`` (mm). A scan of several channels needs ``channel``."""
    from napari_volseg.io.geometry import Volume

    name, geometry = "", None
    if isinstance(image, (str, os.PathLike)):
        from napari_volseg.io import volumes

        name = os.path.basename(str(image))
        image = volumes.read(image, series=series)
    if isinstance(image, Volume):
        spacing = image.spacing if spacing is None else spacing
        geometry, image = image.geometry, image.data
    data = np.asarray(image)
    if data.ndim == 4:
        if channel is None:
            raise PromptError(f"the scan has {data.shape[0]} channels: choose one (channel 0-{data.shape[0] - 1})")
        if not 0 <= channel < data.shape[0]:
            raise PromptError(f"channel {channel} does not exist: the scan has channels 0-{data.shape[0] - 1}")
        data = data[channel]
    segmenter = open_segmenter(model)
    session = InteractiveSession(segmenter, data, spacing if spacing is not None else (1.0, 1.0, 1.0), name=name)
    session.geometry = geometry
    return session
