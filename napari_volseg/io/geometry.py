"""Where a volume's voxels lie, whatever file they came from: the canonical ``(z, y, x)`` LPS+ array convention.

Inside napari-volseg every array is indexed ``(z, y, x)`` (``(c, z, y, x)`` for multi-channel
images) in the radiological LPS+ orientation: ``x`` runs to the patient's left, ``y`` to
posterior, ``z`` to superior. napari shows the last two axes as rows and columns, so an axial
slice appears as a radiologist expects (anterior up, patient's right on the viewer's left).
Spacing is in mm in the same ``(z, y, x)`` order.

A :class:`Geometry` remembers how the file stored the voxels (its format, shape, voxel order and
world affine), so that labels computed on a loaded image are written back voxel-for-voxel in the
source grid (``io.volumes.write_labels``). Every format is described by one affine from the file's
voxel indices ``(i, j, k)`` to RAS+ world mm (nibabel's convention; DICOM, NRRD and MetaImage store
LPS+, converted by :func:`geometry_from_lps`). Nothing here reads or writes files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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

from napari_volseg.errors import LabelValueError

log = logging.getLogger(__name__)

CANONICAL_AXCODES = ("L", "P", "S")  # for array axes (x, y, z) before the (z, y, x) transpose
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
"""RAS+ and LPS+ world coordinates differ by the sign of their first two axes (the matrix is its own inverse)."""


@dataclass(frozen=True)
class Geometry:
    """How a volume lies in its source file and in the world.

    ``source_shape`` is the file's spatial shape ``(i, j, k)``; ``affine`` maps the file's voxel
    indices to RAS+ world mm; ``to_canonical`` is the nibabel orientation transform from the file's
    axes to LPS+. ``header`` is a NIfTI header (the source's own for a NIfTI file, one made from the
    affine otherwise), reused when writing NIfTI so that every geometry field is copied unchanged.
    ``source_format`` names the format the voxels came from (``nifti``, ``nrrd``, ``metaimage``,
    ``dicom``); ``source_meta`` keeps what that format's writer needs to write labels back (for a
    DICOM series, its files in slice order).
    """

    source_shape: tuple[int, int, int]
    affine: np.ndarray
    to_canonical: np.ndarray
    header: nib.Nifti1Header = field(repr=False, compare=False)
    image_class: type = field(default=nib.Nifti1Image, repr=False, compare=False)
    source_format: str = field(default="nifti", compare=False)
    source_meta: Mapping = field(default_factory=dict, repr=False, compare=False)

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

    @property
    def lps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The file grid as ITK and DICOM describe it: origin ``(3,)`` LPS+ mm, spacing ``(3,)`` mm along
        ``(i, j, k)``, direction ``(3, 3)`` with unit columns (the LPS+ direction of ``i``, ``j``, ``k``)."""
        m = LPS_FROM_RAS @ self.affine[:3, :3]
        spacing = np.sqrt((m**2).sum(axis=0))
        return LPS_FROM_RAS @ self.affine[:3, 3], spacing, m / spacing

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

    def same_world_grid(self, other: Geometry, tol_mm: float = 1e-3) -> bool:
        """True when both put the same canonical voxels at the same world positions, whatever each file's voxel
        order (a NIfTI stored RAS and a DICOM series stored LPS of one scan)."""
        return self.shape_zyx == other.shape_zyx and bool(
            np.allclose(self.canonical_affine_xyz, other.canonical_affine_xyz, atol=tol_mm, rtol=0)
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


def canonical_volume(
    source_array: np.ndarray, geometry: Geometry, path: Path, *, label: bool, issues: list[str] | None = None
) -> Volume:
    """A :class:`Volume` from the file's voxels ``(i, j, k)`` or ``(i, j, k, c)``, in canonical ``(z, y, x)``.

    With ``label=True`` the voxels must be whole numbers >= 0 and come back as the smallest unsigned integer
    type holding them; otherwise non-finite intensities are replaced by the finite minimum and reported in
    ``Volume.issues``; float64 becomes float32.
    """
    issues = list(issues or [])
    arr = source_array.astype(np.float32) if source_array.dtype == np.float64 else source_array
    canon = apply_orientation(arr, geometry.to_canonical)
    canon = canon.transpose(2, 1, 0) if canon.ndim == 3 else canon.transpose(3, 2, 1, 0)
    data = np.ascontiguousarray(canon)
    if label:
        data = as_label_array(data, path)
    elif np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            n = int(bad.sum())
            fill = float(data[~bad].min()) if n < data.size else 0.0
            data = np.where(bad, np.float32(fill), data).astype(data.dtype)
            issues.append(f"{path.name}: {n} NaN/Inf voxels replaced by the finite minimum {fill:g}")
            log.warning(issues[-1])
    return Volume(data=data, geometry=geometry, source=path, issues=issues)


def as_label_array(data: np.ndarray, path: Path) -> np.ndarray:
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


def geometry_from_affine(
    affine: np.ndarray, source_shape: tuple[int, int, int], source_format: str = "nifti", source_meta=None
) -> Geometry:
    """A geometry for voxels that did not come from a NIfTI header: ``affine`` maps file voxels ``(i, j, k)`` to
    RAS+ mm; the NIfTI header (for writing NIfTI) is made from it."""
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
        source_format=source_format,
        source_meta=dict(source_meta or {}),
    )


def geometry_from_lps(
    origin_lps,
    spacing_ijk,
    direction_lps,
    source_shape: tuple[int, int, int],
    source_format: str,
    source_meta=None,
) -> Geometry:
    """A geometry as ITK, NRRD and DICOM describe one: the LPS+ position of voxel ``(0, 0, 0)``, the spacing
    along ``(i, j, k)`` in mm and the ``(3, 3)`` direction matrix whose columns are the LPS+ unit vectors of
    ``i``, ``j`` and ``k`` (ITK's ``GetDirection()`` reshaped row-major)."""
    direction = np.asarray(direction_lps, dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ direction @ np.diag(np.asarray(spacing_ijk, dtype=np.float64))
    affine[:3, 3] = LPS_FROM_RAS @ np.asarray(origin_lps, dtype=np.float64)
    return geometry_from_affine(affine, source_shape, source_format, source_meta)


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
