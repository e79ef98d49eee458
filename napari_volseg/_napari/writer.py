"""npe2 writer: a Labels layer in its source scan's format and geometry (NIfTI, NRRD, MetaImage, DICOM SEG)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_volseg._napari.layers import geometry_of
from napari_volseg.errors import VolsegError
from napari_volseg.io import volumes


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Save labels; a layer opened from (or predicted on) a scan keeps that scan's grid. A name without a known
    ending gets the source's own (``.nii.gz`` for a DICOM series or a layer of no file)."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise VolsegError(f"only 3D label layers can be saved (this one is {array.ndim}D)")
    geometry = geometry_of(meta, array.shape)
    if not volumes.is_volume_file(path):
        path = f"{path}{volumes.label_suffix(geometry.source_format)}"
    out = volumes.write_labels(path, array, geometry)
    return [str(out)]
