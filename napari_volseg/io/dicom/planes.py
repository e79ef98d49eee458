"""The slices of a DICOM series: a file's header (``_Entry``) and one 2D slice with its geometry (``_Plane``).

A slice is a single-frame file or one frame of an enhanced multi-frame file (placed by its functional groups);
its position, direction cosines, pixel spacing, size and rescale are read and checked for being numbers here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from napari_volseg.errors import DicomError
from napari_volseg.validation import short


@dataclass
class _Entry:
    """A DICOM file's header (read without pixels) and whether it lacks the preamble (then parsed with force)."""

    path: Path
    header: Dataset
    bare: bool


@dataclass
class _Plane:
    """One 2D slice: a single-frame file or one frame of a multi-frame file, with its geometry in LPS+ mm."""

    entry: _Entry
    frame: int  # frame index in its file, 0 for a single-frame file
    position: np.ndarray  # ImagePositionPatient (3,)
    row: np.ndarray  # unit direction of increasing column index i (3,)
    col: np.ndarray  # unit direction of increasing row index j (3,)
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns) mm
    size: tuple[int, int]  # (Rows, Columns)
    slope: float
    intercept: float

    @property
    def name(self) -> str:
        frames = int(self.entry.header.get("NumberOfFrames", 1) or 1)
        return f"{self.entry.path.name} frame {self.frame + 1}" if frames > 1 else self.entry.path.name


def _floats(values, n: int, what: str, name: str) -> np.ndarray:
    """``values`` as ``(n,)`` finite floats; DicomError naming ``what`` and where (``name``) otherwise."""
    try:
        arr = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{name}: {what} {short(str(values), 80)} is not {n} numbers") from exc
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise DicomError(f"{name}: {what} {short(str(values), 80)} is not {n} finite numbers")
    return arr


def _item(groups: list[Dataset], sequence: str) -> Dataset | None:
    """The first item of ``sequence`` in the first of ``groups`` (per-frame, then shared) that holds it."""
    for group in groups:
        if group is not None and group.get(sequence):
            return group.get(sequence)[0]
    return None


def _plane(entry: _Entry, frame: int, groups: list[Dataset], where: str) -> _Plane:
    """A slice's geometry and rescale from its functional ``groups`` (enhanced multi-frame) or the file's own tags."""
    header = entry.header
    name = f"{where}: {entry.path.name}" + (f" frame {frame + 1}" if groups else "")
    position_item = _item(groups, "PlanePositionSequence") if groups else header
    orientation_item = _item(groups, "PlaneOrientationSequence") if groups else header
    measures_item = _item(groups, "PixelMeasuresSequence") if groups else header
    rescale_item = (_item(groups, "PixelValueTransformationSequence") if groups else None) or header
    for item, tag in (
        (position_item, "ImagePositionPatient"),
        (orientation_item, "ImageOrientationPatient"),
        (measures_item, "PixelSpacing"),
    ):
        if item is None or item.get(tag) is None:
            raise DicomError(f"{name} has no {tag}: it cannot be placed in 3D")
    cosines = _floats(orientation_item.ImageOrientationPatient, 6, "ImageOrientationPatient", name).reshape(2, 3)
    norms = np.linalg.norm(cosines, axis=1)
    if (norms < 1e-6).any() or abs(float(np.dot(cosines[0], cosines[1]))) > 1e-3 * norms.prod():
        raise DicomError(f"{name}: ImageOrientationPatient {list(cosines.ravel())} is not two perpendicular directions")
    spacing = _floats(measures_item.PixelSpacing, 2, "PixelSpacing", name)
    if (spacing <= 0).any():
        raise DicomError(f"{name}: PixelSpacing {list(spacing)} mm is not positive")
    slope = rescale_item.get("RescaleSlope")
    intercept = rescale_item.get("RescaleIntercept")
    return _Plane(
        entry=entry,
        frame=frame,
        position=_floats(position_item.ImagePositionPatient, 3, "ImagePositionPatient", name),
        row=cosines[0] / norms[0],
        col=cosines[1] / norms[1],
        spacing=(float(spacing[0]), float(spacing[1])),
        size=(int(header.Rows), int(header.Columns)),
        slope=1.0 if slope in (None, "") else float(slope),
        intercept=0.0 if intercept in (None, "") else float(intercept),
    )


def _planes(entries: list[_Entry], where: str) -> list[_Plane]:
    """Every slice of the series: one per single-frame file, one per frame of an enhanced multi-frame file."""
    planes: list[_Plane] = []
    for entry in entries:
        header = entry.header
        samples = int(header.get("SamplesPerPixel", 1) or 1)
        if samples != 1:
            raise DicomError(
                f"{where}: {entry.path.name} is a colour image ({samples} samples per pixel, "
                f"{header.get('PhotometricInterpretation', '?')}); expected a grayscale 3D volume"
            )
        frames = int(header.get("NumberOfFrames", 1) or 1)
        shared = _item([header], "SharedFunctionalGroupsSequence")
        per_frame = header.get("PerFrameFunctionalGroupsSequence")
        if per_frame is not None or shared is not None:
            if per_frame is None or len(per_frame) != frames:
                raise DicomError(
                    f"{where}: {entry.path.name} has {frames} frames but "
                    f"{0 if per_frame is None else len(per_frame)} PerFrameFunctionalGroupsSequence items"
                )
            planes += [_plane(entry, f, [per_frame[f], shared], where) for f in range(frames)]
        elif frames > 1:
            raise DicomError(
                f"{where}: {entry.path.name} holds {frames} frames without per-frame positions "
                "(PerFrameFunctionalGroupsSequence); cannot place them in 3D"
            )
        else:
            planes.append(_plane(entry, 0, [], where))
    return planes
