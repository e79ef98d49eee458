"""The checks that a DICOM series is one regular 3D grid, and the sorting of its slices along the slice normal.

Mixed sizes, pixel spacings or orientations, several slices at one position, gantry tilt and irregular or missing
slice gaps are each refused with one :class:`~napari_volseg.errors.DicomError` line saying what and where.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from napari_volseg.errors import DicomError
from napari_volseg.io.dicom.planes import _Plane

SPACING_RTOL = 0.01
SPACING_ATOL_MM = 0.01
"""A slice gap differing from the median gap by more than 1 % of it (at least 0.01 mm) is irregular."""
SAME_POSITION_MM = 0.01
"""Two slices closer than this along the normal lie at the same position."""
TILT_DEGREES = 0.1
TILT_ATOL_MM = 0.02
"""Slices whose positions leave the line along the normal by more than 0.1 degrees (and 0.02 mm) are tilted."""
ORIENTATION_ATOL = 1e-3
"""Direction cosines (unit vectors) differing by more than this are different orientations (about 0.06 degrees)."""
DUPLICATE_TAGS = (
    "EchoNumbers",
    "EchoTime",
    "TemporalPositionIdentifier",
    "TriggerTime",
    "AcquisitionNumber",
    "DiffusionBValue",
    "ImageType",
)
"""Tags that tell apart several images at one position (echoes, time points, acquisitions), named in the message."""


def _mm(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _cosines(plane: _Plane) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in (*plane.row, *plane.col)) + ")"


def _mixed(planes: list[_Plane], key, show, what: str, where: str) -> None:
    """DicomError when ``key(plane)`` differs between slices, naming the kinds, their counts and an example."""
    kinds = Counter(key(p) for p in planes)
    if len(kinds) < 2:
        return
    common = kinds.most_common()
    example = {k: next(p for p in planes if key(p) == k) for k, _ in common}
    parts = [f"{show(example[k])} in {n} slice{'s' * (n > 1)}" for k, n in common[:3]]
    other = example[common[1][0]].name
    raise DicomError(
        f"{where}: slices of several {what}: {' and '.join(parts)} (e.g. {other}); one series must be one grid"
    )


def _check_grid(planes: list[_Plane], where: str) -> None:
    """Refuse mixed sizes, pixel spacings and orientations."""
    _mixed(planes, lambda p: p.size, lambda p: f"{p.size[0]} x {p.size[1]}", "sizes (rows x columns)", where)
    _mixed(
        planes,
        lambda p: tuple(np.round(np.asarray(p.spacing) / 1e-4).astype(int)),
        lambda p: f"{_mm(p.spacing[0])} x {_mm(p.spacing[1])}",
        "pixel spacings (PixelSpacing, mm)",
        where,
    )
    first = planes[0]
    differ = [
        p for p in planes if max(np.abs(p.row - first.row).max(), np.abs(p.col - first.col).max()) > ORIENTATION_ATOL
    ]
    if differ:
        raise DicomError(
            f"{where}: slices of several orientations: ImageOrientationPatient {_cosines(first)} in "
            f"{len(planes) - len(differ)} slices and {_cosines(differ[0])} in {len(differ)} (e.g. {differ[0].name}); "
            "a localizer in the series? one series must be one grid"
        )


def _check_duplicates(planes: list[_Plane], along: np.ndarray, where: str) -> None:
    steps = np.diff(along)
    same = np.flatnonzero(steps < SAME_POSITION_MM)
    if not len(same):
        return
    a, b = planes[same[0]], planes[same[0] + 1]
    positions = len(np.unique(np.round(along[np.r_[same, same + 1]] / SAME_POSITION_MM)))
    differ = [
        t for t in DUPLICATE_TAGS if a.entry is not b.entry and str(a.entry.header.get(t)) != str(b.entry.header.get(t))
    ]
    why = f" (they differ in {', '.join(differ)})" if differ else ""
    holds = f"{positions} positions hold" if positions > 1 else "1 position holds"
    raise DicomError(
        f"{where}: {a.name} and {b.name} lie at the same position ({_mm(along[same[0]])} mm along the slice normal; "
        f"{holds} several slices): several acquisitions, echoes or time points in one series{why}; "
        "split it into one series per volume"
    )


def _check_tilt(planes: list[_Plane], along: np.ndarray, normal: np.ndarray, where: str) -> None:
    offsets = np.array([p.position - planes[0].position for p in planes])
    drift = np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)
    allowed = np.maximum(TILT_ATOL_MM, np.tan(np.radians(TILT_DEGREES)) * np.abs(along - along[0]))
    if not (drift > allowed).any():
        return
    k = int(np.argmax(drift - allowed))
    angle = math.degrees(math.atan2(drift[k], abs(along[k] - along[0])))
    tilt = planes[0].entry.header.get("GantryDetectorTilt")
    tag = f" (GantryDetectorTilt {tilt})" if tilt not in (None, "") and float(tilt) != 0 else ""
    raise DicomError(
        f"{where}: gantry tilt or sheared slices{tag}: the slices step {angle:.2f} degrees off their normal "
        f"({planes[k].name} lies {_mm(drift[k])} mm off the normal through the first slice); "
        "resample it to an untilted grid first (e.g. 3D Slicer's acquisition geometry regularization)"
    )


def _check_spacing(planes: list[_Plane], along: np.ndarray, where: str) -> None:
    steps = np.diff(along)
    median = float(np.median(steps))
    tol = max(SPACING_RTOL * median, SPACING_ATOL_MM)
    bad = np.flatnonzero(np.abs(steps - median) > tol)
    if not len(bad):
        return
    k = int(bad[0])
    gap = float(steps[k])
    between = (
        f"between {_mm(along[k])} and {_mm(along[k + 1])} mm along the slice normal ({planes[k].name}, "
        f"{planes[k + 1].name})"
    )
    others = "the others are" if len(bad) == 1 else "the median gap is"
    more = "" if len(bad) == 1 else f"; {len(bad)} gaps differ in all"
    missing = round(gap / median) - 1
    if missing >= 1 and abs(gap - (missing + 1) * median) <= tol * (missing + 1):
        raise DicomError(
            f"{where}: slice gap of {_mm(gap)} mm {between} where {others} {_mm(median)} mm: "
            f"{missing} slice{'s' * (missing > 1)} missing?{more}"
        )
    raise DicomError(
        f"{where}: irregular slice spacing, a gap of {_mm(gap)} mm {between} where {others} {_mm(median)} mm{more}"
    )


def _ordered(planes: list[_Plane], where: str) -> tuple[list[_Plane], np.ndarray, float]:
    """The slices sorted along the normal after every check, the normal (3,) and the slice step in mm."""
    if len(planes) < 2:
        raise DicomError(f"{where}: a single slice ({planes[0].name}): a 2D image, expected a 3D volume")
    _check_grid(planes, where)
    normal = np.cross(planes[0].row, planes[0].col)
    normal /= np.linalg.norm(normal)
    planes = sorted(planes, key=lambda p: float(p.position @ normal))
    along = np.array([float(p.position @ normal) for p in planes])
    _check_duplicates(planes, along, where)
    _check_tilt(planes, along, normal, where)
    _check_spacing(planes, along, where)
    return planes, normal, float((along[-1] - along[0]) / (len(planes) - 1))
