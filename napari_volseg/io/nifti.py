"""NIfTI volumes in one canonical orientation, and the exact way back to the file's own.

Inside napari-volseg every array is indexed ``(z, y, x)`` (``(c, z, y, x)`` for multi-channel
images) in the radiological LPS+ orientation: ``x`` runs to the patient's left, ``y`` to
posterior, ``z`` to superior. napari shows the last two axes as rows and columns, so an axial
slice appears as a radiologist expects (anterior up, patient's right on the viewer's left).
Spacing is in mm in the same ``(z, y, x)`` order.

A :class:`Geometry` remembers how the file stored the voxels (shape, orientation, header), so
that labels computed on a loaded image are written back voxel-for-voxel in the source grid
with the source affine and qform/sform codes (:func:`save_labels`).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)
from nibabel.volumeutils import shape_zoom_affine

from napari_volseg.errors import LabelValueError, NiftiReadError, UnsupportedShapeError
from napari_volseg.outputs import atomic_write
from napari_volseg.validation import short

log = logging.getLogger(__name__)

CANONICAL_AXCODES = ("L", "P", "S")  # for array axes (x, y, z) before the (z, y, x) transpose
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


@dataclass(frozen=True)
class Geometry:
    """How a volume lies in its source file and in the world.

    ``source_shape`` is the file's spatial shape ``(i, j, k)``; ``affine`` maps the file's voxel
    indices to world mm; ``to_canonical`` is the nibabel orientation transform from the file's
    axes to LPS+. ``header`` is the source header, reused when writing so that every geometry
    field (pixdim, qform, sform and their codes) is copied unchanged.
    """

    source_shape: tuple[int, int, int]
    affine: np.ndarray
    to_canonical: np.ndarray
    header: nib.Nifti1Header = field(repr=False, compare=False)
    image_class: type = field(default=nib.Nifti1Image, repr=False, compare=False)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """Spatial shape of the canonical array, ``(z, y, x)``."""
        xyz = [self.source_shape[int(axis)] for axis in np.argsort(self.to_canonical[:, 0])]
        return (int(xyz[2]), int(xyz[1]), int(xyz[0]))

    @property
    def canonical_affine_xyz(self) -> np.ndarray:
        """Affine from canonical ``(x, y, z)`` indices (LPS+ array before the transpose) to world mm."""
        return self.affine @ inv_ornt_aff(self.to_canonical, self.source_shape)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(z, y, x)``."""
        zooms = np.sqrt((self.canonical_affine_xyz[:3, :3] ** 2).sum(axis=0))
        return (float(zooms[2]), float(zooms[1]), float(zooms[0]))

    @property
    def origin_zyx(self) -> tuple[float, float, float]:
        """LPS+ world position (mm) of canonical voxel (0, 0, 0), as ``(S, P, L)`` to match ``(z, y, x)``.

        Used as the napari layer ``translate`` so that layers of one scan (and of scans sharing a
        frame of reference) line up in world coordinates; exact for axis-aligned scans.
        """
        o = self.canonical_affine_xyz[:3, 3]
        return (float(o[2]), float(-o[1]), float(-o[0]))

    def to_source(self, array_zyx: np.ndarray) -> np.ndarray:
        """Map a canonical ``(z, y, x)`` array back to the file's own voxel order ``(i, j, k)``."""
        if tuple(array_zyx.shape) != self.shape_zyx:
            raise ValueError(f"array shape {array_zyx.shape} is not this geometry's {self.shape_zyx}")
        back = ornt_transform(axcodes2ornt(CANONICAL_AXCODES), io_orientation(self.affine))
        return np.ascontiguousarray(apply_orientation(array_zyx.transpose(2, 1, 0), back))

    def same_grid(self, other: Geometry, tol_mm: float = 1e-3) -> bool:
        """True when both geometries put the same voxels at the same world positions."""
        return self.source_shape == other.source_shape and bool(
            np.allclose(self.affine, other.affine, atol=tol_mm, rtol=0)
        )


@dataclass
class Volume:
    """A loaded volume: ``data`` is ``(z, y, x)`` or ``(c, z, y, x)``, spacing in mm ``(z, y, x)``.

    ``issues`` lists what was found and repaired while loading (e.g. NaN intensities), one line each.
    """

    data: np.ndarray
    geometry: Geometry
    source: Path | None = None
    issues: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing_zyx

    @property
    def affine(self) -> np.ndarray:
        return self.geometry.affine

    @property
    def channels(self) -> int:
        return 1 if self.data.ndim == 3 else int(self.data.shape[0])

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0


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
    arr = _voxels(img, path).reshape(shape)
    geometry, repaired = _geometry(img, path.name)
    canon = apply_orientation(arr, geometry.to_canonical)
    canon = canon.transpose(2, 1, 0) if canon.ndim == 3 else canon.transpose(3, 2, 1, 0)
    data = np.ascontiguousarray(canon)
    issues = [repaired] if repaired else []
    if repaired:
        log.warning(repaired)
    if label:
        data = _as_label_array(data, path)
    elif np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            n = int(bad.sum())
            fill = float(data[~bad].min()) if n < data.size else 0.0
            data = np.where(bad, np.float32(fill), data).astype(data.dtype)
            issues.append(f"{path.name}: {n} NaN/Inf voxels replaced by the finite minimum {fill:g}")
            log.warning(issues[-1])
    return Volume(data=data, geometry=geometry, source=path, issues=issues)


def _as_label_array(data: np.ndarray, path: Path) -> np.ndarray:
    """``data`` as the smallest unsigned integer type holding it; LabelValueError unless whole numbers >= 0."""
    if data.dtype.kind not in "biuf":
        raise LabelValueError(f"{path.name}: labels must be whole numbers, not {data.dtype} values")
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise LabelValueError(f"{path.name} is not a label volume: it holds non-integer values")
    if data.size and data.min() < 0:
        raise LabelValueError(f"{path.name} holds negative label values (min {data.min()})")
    top = int(data.max()) if data.size else 0
    if top >= 2**32:
        raise LabelValueError(f"{path.name} holds label values up to {top}; labels are small whole numbers")
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    return data.astype(dtype)


def save_labels(labels_zyx: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write canonical ``(z, y, x)`` labels to NIfTI in the source file's own grid.

    The written file has the source's voxel order, shape, affine, pixdim and qform/sform codes;
    only the data type changes (smallest unsigned integer type holding the labels). The file is
    written to a temporary name and renamed, so a crash never leaves a half-written file.
    """
    labels = _as_label_array(np.asarray(labels_zyx), Path(path))
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


def geometry_from_affine(affine: np.ndarray, source_shape: tuple[int, int, int]) -> Geometry:
    """A geometry for arrays that never came from a file: ``affine`` maps file voxels to RAS+ mm."""
    affine = np.asarray(affine, dtype=np.float64)
    header = nib.Nifti1Header()
    header.set_data_shape(tuple(int(s) for s in source_shape))
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm")
    return Geometry(
        source_shape=tuple(int(s) for s in source_shape),
        affine=affine,
        to_canonical=ornt_transform(io_orientation(affine), axcodes2ornt(CANONICAL_AXCODES)),
        header=header,
    )


def geometry_from_spacing(
    shape_zyx: tuple[int, int, int], spacing_zyx=(1.0, 1.0, 1.0), origin_zyx=(0.0, 0.0, 0.0)
) -> Geometry:
    """A canonical geometry for a ``(z, y, x)`` array known only by spacing (e.g. a painted layer).

    The file stores it in LPS+ voxel order with a RAS+ world affine, as NIfTI requires: voxel
    ``(x, y, z)`` lies at world ``(-(x*sx + ox), -(y*sy + oy), z*sz + oz)`` mm.
    """
    sz, sy, sx = (float(s) for s in spacing_zyx)
    oz, oy, ox = (float(o) for o in origin_zyx)
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]], dtype=np.float64)
    return geometry_from_affine(affine, (int(shape_zyx[2]), int(shape_zyx[1]), int(shape_zyx[0])))
