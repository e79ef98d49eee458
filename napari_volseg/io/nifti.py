"""NIfTI-1 and NIfTI-2 files through nibabel: one backend of the front door ``io.volumes``.

Voxels come back in the canonical ``(z, y, x)`` LPS+ convention of :mod:`napari_volseg.io.geometry`; the
:class:`Geometry` keeps the file's own header, so that labels are written back (:func:`save_labels`) voxel-for-voxel
in the source grid with the source affine and qform/sform codes.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from nibabel.volumeutils import shape_zoom_affine

from napari_volseg.errors import NiftiReadError, UnsupportedShapeError
from napari_volseg.io.geometry import (
    CANONICAL_AXCODES,
    Geometry,
    Volume,
    as_label_array,
    canonical_volume,
    geometry_from_affine,
    geometry_from_spacing,
)
from napari_volseg.outputs import atomic_write
from napari_volseg.validation import short

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_VOXELS = 2**31
"""The most voxels a file may declare (8.6 GB as float32; a 1024 x 1024 x 2048 micro-CT fits).
A header declaring more is refused before any voxel is read: it is corrupt, or the scan must be
cropped or downsampled first."""
DEFLATE_MAX_RATIO = 1032
"""No deflate stream expands more than 1032-fold: a ``.nii.gz`` declaring more voxel bytes than that
is truncated or its header lies, and is refused before the voxels' memory is allocated."""
MAX_SPACING_MM = 1e5
"""Voxels larger than this (100 m) mean a broken header, not a scan."""


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True when the file name ends in ``.nii`` or ``.nii.gz`` (any case)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _read(path: Path) -> nib.spatialimages.SpatialImage:
    if not path.exists():
        raise NiftiReadError(f"no such file: {path}")
    if path.is_dir():
        raise NiftiReadError(f"{path} is a folder, not a NIfTI file")
    if not is_nifti_path(path):
        raise NiftiReadError(f"{path.name} is not a NIfTI file (expected .nii or .nii.gz)")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a bad header
        raise NiftiReadError(
            f"{path.name} is not a readable NIfTI file ({type(exc).__name__}: {short(str(exc), 200)})"
        ) from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiReadError(f"{path.name} is not a NIfTI image (nibabel read it as {type(img).__name__})")
    _check_header(img, path)
    return img


def _check_header(img: nib.spatialimages.SpatialImage, path: Path) -> None:
    """Refuse from the header alone what cannot be loaded: empty or huge shapes, non-real voxel types."""
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3:
        raise UnsupportedShapeError(f"{path.name} is a {len(shape)}D image of shape {shape}; expected a 3D volume")
    if min(shape) < 1:
        raise UnsupportedShapeError(f"{path.name} has an empty axis (shape {shape}): it holds no voxels")
    voxels = int(np.prod(shape, dtype=object))
    if voxels > MAX_VOXELS:
        raise UnsupportedShapeError(
            f"{path.name} declares {' x '.join(map(str, shape))} = {voxels:.3g} voxels, more than the "
            f"{MAX_VOXELS:.3g} napari-volseg reads: its header is corrupt, or crop or downsample the scan first"
        )
    dtype = img.header.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        what = "RGB colour" if dtype.fields is not None else "complex" if dtype.kind == "c" else str(dtype)
        raise NiftiReadError(f"{path.name} holds {what} voxels; expected real-valued intensities or labels")
    declared = voxels * dtype.itemsize + int(getattr(img.dataobj, "offset", 0))
    size = path.stat().st_size
    if declared > (size * DEFLATE_MAX_RATIO if path.name.lower().endswith(".gz") else size):
        raise NiftiReadError(
            f"{path.name} is truncated or its header is corrupt: it declares {' x '.join(map(str, shape))} "
            f"{dtype} voxels ({declared:,} bytes) in a file of {size:,} bytes"
        )


def _usable(affine: np.ndarray | None) -> bool:
    """True for a finite voxel-to-world affine whose 3 x 3 part is invertible, with voxels of 1 nm to 100 m."""
    if affine is None or not np.isfinite(affine).all():
        return False
    sizes = np.linalg.svd(affine[:3, :3], compute_uv=False)
    return bool(1e-6 < sizes[-1] and sizes[0] < MAX_SPACING_MM and sizes[-1] > 1e-6 * sizes[0])


def _world_affine(img: nib.spatialimages.SpatialImage, name: str) -> tuple[np.ndarray, str | None]:
    """The file's voxel-to-world affine, and a line saying what was repaired (None: nothing).

    As nibabel does, the sform wins over the qform, which wins over the pixdims. A degenerate
    (singular, zero or non-finite) sform falls back to the qform, then to the pixdims, as ITK and
    nibabel do when a header's first choice is broken; pixdims that are zero, negative, NaN or
    absurd become 1 mm. The header itself is kept, so labels are written back with it unchanged.
    """
    affine = np.asarray(img.affine, dtype=np.float64)
    if _usable(affine):
        return affine, None
    header = img.header
    try:
        qform, qcode = header.get_qform(coded=True)
    except ValueError:  # quaternion b, c, d of norm > 1: not a rotation
        qform, qcode = None, 0
    if qcode and _usable(qform):
        return np.asarray(qform, dtype=np.float64), f"{name}: its sform is degenerate (singular); using its qform"
    zooms = [float(z) for z in header.get_zooms()[:3]]
    fixed = [z if math.isfinite(z) and 1e-6 < z < MAX_SPACING_MM else 1.0 for z in zooms]
    affine = shape_zoom_affine(img.shape[:3], fixed)
    repaired = (
        ""
        if fixed == zooms
        else f" ({', '.join(f'{z:g}' for z in zooms)} mm read as {', '.join(f'{z:g}' for z in fixed)})"
    )
    return (
        affine,
        f"{name}: no usable orientation in its header (degenerate sform and qform); using its pixdims{repaired}",
    )


def _geometry(img: nib.spatialimages.SpatialImage, name: str) -> tuple[Geometry, str | None]:
    affine, repaired = _world_affine(img, name)
    geometry = Geometry(
        source_shape=tuple(int(s) for s in img.shape[:3]),
        affine=affine,
        to_canonical=ornt_transform(io_orientation(affine), axcodes2ornt(CANONICAL_AXCODES)),
        header=img.header.copy(),
        image_class=type(img),
    )
    return geometry, repaired


def read_geometry(path: str | os.PathLike) -> Geometry:
    """The geometry of a NIfTI file from its header alone (no voxel is read): shape, spacing, orientation."""
    path = Path(path)
    return _geometry(_read(path), path.name)[0]


def _voxels(img: nib.spatialimages.SpatialImage, path: Path) -> np.ndarray:
    try:
        arr = np.asanyarray(img.dataobj)
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        raise NiftiReadError(
            f"{path.name} is truncated or corrupt ({type(exc).__name__}: {short(str(exc), 200)})"
        ) from exc
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return arr


def load(path: str | os.PathLike, *, label: bool = False) -> Volume:
    """Load a ``.nii`` / ``.nii.gz`` file into canonical ``(z, y, x)`` (``(c, z, y, x)`` for 4D).

    With ``label=True`` the voxels must be whole numbers and come back as the smallest unsigned
    integer type that holds them. Non-finite intensities are replaced by the finite minimum and
    reported in ``Volume.issues``. Raises :class:`NiftiReadError` for an unreadable file and
    :class:`UnsupportedShapeError` for anything but 3D or 4D (trailing singleton axes dropped).
    """
    path = Path(path)
    img = _read(path)
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4) or (label and len(shape) != 3):
        kind = "label" if label else "image"
        raise UnsupportedShapeError(
            f"{path.name} is a {len(shape)}D {kind} of shape {shape}; expected a 3D volume"
            + ("" if label else " or a 4D multi-channel volume")
        )
    geometry, repaired = _geometry(img, path.name)
    if repaired:
        log.warning(repaired)
    return canonical_volume(
        _voxels(img, path).reshape(shape), geometry, path, label=label, issues=[repaired] if repaired else []
    )


def save_labels(labels_zyx: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write canonical ``(z, y, x)`` labels to NIfTI in the source file's own grid.

    The written file has the source's voxel order, shape, affine, pixdim and qform/sform codes;
    only the data type changes (smallest unsigned integer type holding the labels). The file is
    written to a temporary name and renamed, so a crash never leaves a half-written file.
    """
    labels = as_label_array(np.asarray(labels_zyx), Path(path))
    return _save(geometry.to_source(labels), geometry, path, labels.dtype)


def save_image(data_zyx: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write a canonical ``(z, y, x)`` image in the source grid, keeping the array's own dtype (bool
    as uint8 and float16 as float32, which NIfTI lacks)."""
    data = np.asarray(data_zyx)
    if data.dtype.kind not in "biuf":
        raise NiftiReadError(f"cannot write {Path(path).name}: {data.dtype} voxels; NIfTI images here are real-valued")
    data = data.astype({"?": np.uint8, "e": np.float32}.get(data.dtype.char, data.dtype), copy=False)
    return _save(geometry.to_source(data), geometry, path, data.dtype)


def _save(source_array: np.ndarray, geometry: Geometry, path: str | os.PathLike, dtype) -> Path:
    path = Path(path)
    if not is_nifti_path(path):
        raise NiftiReadError(f"cannot write {path.name}: the name must end in .nii or .nii.gz")
    header = geometry.header.copy()
    header.set_data_dtype(dtype)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"] = 0
    header["cal_max"] = 0
    klass = geometry.image_class if geometry.image_class in (nib.Nifti1Image, nib.Nifti2Image) else nib.Nifti1Image
    # affine=None keeps the header's own qform/sform fields and codes bit for bit.
    img = klass(source_array, None, header=header)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    return atomic_write(path, lambda tmp: nib.save(img, tmp), suffix=suffix)


__all__ = [
    "CANONICAL_AXCODES",
    "Geometry",
    "Volume",
    "geometry_from_affine",
    "geometry_from_spacing",
    "is_nifti_path",
    "load",
    "read_geometry",
    "save_image",
    "save_labels",
]
