"""npe2 writer: a Labels layer to ``.nii`` / ``.nii.gz`` in its source scan's geometry."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_volseg._napari.layers import geometry_of
from napari_volseg.errors import VolsegError
from napari_volseg.io import nifti


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Save labels; a layer opened from (or predicted on) a NIfTI scan keeps that scan's grid."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise VolsegError(f"only 3D label layers can be saved as NIfTI (this one is {array.ndim}D)")
    if not nifti.is_nifti_path(path):
        path = f"{path}.nii.gz"
    out = nifti.save_labels(array, geometry_of(meta, array.shape), path)
    return [str(out)]
