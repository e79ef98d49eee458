"""DICOM image series through pydicom, and DICOM SEG through highdicom: one backend of the front door ``io.volumes``.

A series is found by its SeriesInstanceUID among every DICOM file below a folder (any file names, nested
subfolders, with or without the 128-byte preamble); its slices are ordered by their position along the slice
normal, never by file name or InstanceNumber. The file's voxel indices follow the DICOM convention:

* ``i`` = column, along the first (row) cosine of ImageOrientationPatient, step PixelSpacing[1] mm;
* ``j`` = row, along the second (column) cosine, step PixelSpacing[0] mm;
* ``k`` = slice, along the normal ``n = row_cosine x column_cosine``, slices sorted by ascending
  ``ImagePositionPatient . n``; the origin is the ImagePositionPatient of the first sorted slice.

Enhanced multi-frame files (one file, PerFrameFunctionalGroupsSequence) are read the same way, each frame placed
by its PlanePositionSequence. A series that is not one regular 3D grid (missing slices, irregular spacing, repeated
positions, gantry tilt, mixed orientations or sizes, one 2D slice, colour) is refused with one
:class:`~napari_volseg.errors.DicomError` line saying what and where; nothing is resampled or guessed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from napari_volseg.errors import DicomError, SeriesChoiceError
from napari_volseg.io.geometry import Geometry, Volume, as_label_array, canonical_volume, geometry_from_lps
from napari_volseg.outputs import atomic_write
from napari_volseg.validation import short

log = logging.getLogger(__name__)

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
"""Names that make a file without the 128-byte preamble worth parsing as DICOM."""
PEEK_FILES = 48
""":func:`holds_dicom` looks at no more files than this."""
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
DECODERS = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",
}
"""The pip packages that let pydicom decode each compressed transfer syntax (python-gdcm decodes them all)."""
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


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM image series: its SeriesInstanceUID, SeriesDescription, Modality, SeriesNumber and files.

    ``files`` are sorted by slice position along the normal (one file for an enhanced multi-frame series);
    ``frames`` is the number of frames of a multi-frame series, None when every file holds one slice.
    """

    uid: str
    description: str
    modality: str
    number: int | None
    files: tuple[Path, ...]
    frames: int | None = None

    def describe(self) -> str:
        """One line, e.g. ``series 3 'AX T1 POST' (MR, 110 slices) 1.2.840...``."""
        count = f"{self.frames} frames" if self.frames else f"{len(self.files)} slices"
        number = "" if self.number is None else f" {self.number}"
        description = f" '{self.description}'" if self.description else ""
        return f"series{number}{description} ({self.modality or 'no modality'}, {count}) {self.uid}"


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


def _sniff(path: Path) -> bool | None:
    """True: 'DICM' at byte 128; False: no preamble, but the file starts like a DICOM data set (group 0002 or
    0008) or is named like DICOM (:data:`DICOM_SUFFIXES`), so parsing decides; None: not DICOM."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if len(head) >= 8 and int.from_bytes(head[0:2], "little") in (0x0002, 0x0008):
        return False
    return False if path.suffix.lower() in DICOM_SUFFIXES else None


def _bare_header(path: Path) -> Dataset | None:
    """The header of a file without preamble, or None when pydicom cannot make a DICOM data set of it."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return ds if ds.get("SOPClassUID") else None
    except Exception:  # force=True parses anything: any failure means 'not DICOM'
        return None


def _entry(path: Path) -> _Entry | None:
    """The file's header, None when it is not DICOM; DicomError when it claims to be DICOM but its header is broken."""
    magic = _sniff(path)
    if magic is None:
        return None
    if not magic:
        header = _bare_header(path)
        return None if header is None else _Entry(path, header, bare=True)
    try:
        return _Entry(path, pydicom.dcmread(path, stop_before_pixels=True), bare=False)
    except Exception as exc:  # pydicom raises many types for a broken header
        raise DicomError(
            f"{path} is truncated or corrupt: its DICOM header cannot be read ({type(exc).__name__}: "
            f"{short(str(exc), 120)}); remove or replace the file"
        ) from exc


def is_dicom_file(path: Path) -> bool:
    """True for a DICOM file: 'DICM' at byte 128 (read 132 bytes), or no preamble but a header pydicom parses."""
    path = Path(path)
    magic = _sniff(path)
    return bool(magic) or (magic is False and _bare_header(path) is not None)


def _files(folder: Path):
    """Every file below ``folder`` (hidden files and folders left out), folders in name order."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(root) / name


def holds_dicom(folder: Path) -> bool:
    """True when a DICOM file lies in ``folder`` or below it (no more than :data:`PEEK_FILES` files are looked at)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    for n, path in enumerate(_files(folder)):
        if n >= PEEK_FILES:
            return False
        if is_dicom_file(path):
            return True
    return False


def _not_an_image(entry: _Entry) -> str | None:
    """Why a DICOM object is not an image (e.g. ``Basic Text SR Storage``), None when it is one; DicomError for an
    image whose header ends before its Rows and Columns (a truncated file)."""
    header = entry.header
    classes = [header.get("SOPClassUID"), getattr(header, "file_meta", Dataset()).get("MediaStorageSOPClassUID")]
    known = [UID(str(c)).name for c in classes if c and UID(str(c)).name != str(c)]
    name = known[0] if known else str(classes[0] or classes[1] or "no SOP Class")
    image = any("Image Storage" in n for n in known)
    if "Rows" not in header or "Columns" not in header:
        if image:
            raise DicomError(f"{entry.path} is truncated or corrupt: an image header without Rows and Columns")
        return name
    return name if known and not image else None


def _names(paths: list[Path], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(p.name for p in paths[:limit]) + more


def _scan(folder: Path) -> tuple[dict[str, list[_Entry]], list[str]]:
    """The image files below ``folder`` by SeriesInstanceUID, and one note per kind of file left out."""
    series: dict[str, list[_Entry]] = {}
    not_dicom: list[Path] = []
    skipped: dict[str, list[Path]] = {}
    modality: dict[str, str] = {}
    for path in _files(folder):
        entry = _entry(path)
        if entry is None:
            not_dicom.append(path)
            continue
        reason = _not_an_image(entry)
        if reason:
            skipped.setdefault(reason, []).append(path)
            modality[reason] = str(entry.header.get("Modality", "") or "")
            continue
        series.setdefault(str(entry.header.get("SeriesInstanceUID", "") or ""), []).append(entry)
    notes = [
        f"{folder.name}: skipped {len(paths)} {kind} object{'s' * (len(paths) > 1)}"
        f"{f' ({modality[kind]})' if modality[kind] else ''}, not an image: {_names(paths)}"
        for kind, paths in skipped.items()
    ]
    if not_dicom:
        files = f"{len(not_dicom)} file{'s' * (len(not_dicom) > 1)}"
        notes.append(f"{folder.name}: ignored {files} that are not DICOM: {_names(not_dicom)}")
    return series, notes


def _position_key(entry: _Entry, normal: np.ndarray | None) -> float:
    try:
        return float(np.dot(np.asarray(entry.header.ImagePositionPatient, dtype=float), normal))
    except (AttributeError, TypeError, ValueError):
        return math.inf


def _normal(header: Dataset) -> np.ndarray | None:
    try:
        iop = np.asarray(header.ImageOrientationPatient, dtype=float).reshape(2, 3)
    except (AttributeError, TypeError, ValueError):
        return None
    return np.cross(iop[0], iop[1])


def _info(uid: str, entries: list[_Entry]) -> SeriesInfo:
    first = entries[0].header
    normal = _normal(first)
    ordered = sorted(entries, key=lambda e: _position_key(e, normal)) if normal is not None else entries
    frames = sum(int(e.header.get("NumberOfFrames", 1) or 1) for e in entries)
    try:
        number = int(first.get("SeriesNumber")) if first.get("SeriesNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    return SeriesInfo(
        uid=uid,
        description=str(first.get("SeriesDescription", "") or ""),
        modality=str(first.get("Modality", "") or ""),
        number=number,
        files=tuple(e.path for e in ordered),
        frames=frames if frames != len(entries) else None,
    )


def _infos(series: dict[str, list[_Entry]]) -> list[SeriesInfo]:
    infos = [_info(uid, entries) for uid, entries in series.items()]
    return sorted(infos, key=lambda s: (s.number is None, s.number or 0, s.uid))


def find_series(path: Path) -> tuple[list[SeriesInfo], list[str]]:
    """The image series below a folder (searched recursively), or in the folder of one file of a series.

    Returns the series (sorted by SeriesNumber) and notes, one line each, for what was left out: DICOM objects that
    are not images (SR, RTSTRUCT, SEG, presentation states...) and files that are not DICOM. Raises
    :class:`DicomError` for a file whose DICOM header is truncated or corrupt.
    """
    path = Path(path)
    folder = _folder(path)
    series, notes = _scan(folder)
    return _infos(series), notes


def _folder(path: Path) -> Path:
    if not path.exists():
        raise DicomError(f"no such DICOM file or folder: {path}")
    return path if path.is_dir() else path.parent


def series_uid_of(path: Path) -> str:
    """The SeriesInstanceUID of one DICOM file (header only); DicomError when it is not a DICOM file."""
    path = Path(path)
    entry = _entry(path) if path.is_file() else None
    if entry is None:
        raise DicomError(f"{path} is not a DICOM file")
    return str(entry.header.get("SeriesInstanceUID", "") or "")


def _where(info: SeriesInfo, folder: Path) -> str:
    number = "" if info.number is None else f" {info.number}"
    description = f" '{info.description}'" if info.description else ""
    return f"DICOM series{number}{description} in {folder}"


def _choose(path: Path, series_uid: str | None) -> tuple[Path, SeriesInfo, list[_Entry], list[str]]:
    folder = _folder(path)
    if path.is_file():
        entry = _entry(path)
        if entry is None:
            raise DicomError(f"{path} is not a DICOM file")
        reason = _not_an_image(entry)
        if reason:
            raise DicomError(f"{path} is a {reason} object, not an image")
        own = str(entry.header.get("SeriesInstanceUID", "") or "")
        if series_uid is not None and series_uid != own:
            raise DicomError(f"{path.name} belongs to series {own}, not to the series {series_uid} asked for")
        series_uid = own
    series, notes = _scan(folder)
    infos = _infos(series)
    if not infos:
        raise DicomError(f"{folder} holds no DICOM image series" + (f" ({'; '.join(notes)})" if notes else ""))
    if series_uid is None:
        if len(infos) > 1:
            raise SeriesChoiceError(
                f"{folder} holds {len(infos)} DICOM image series: {'; '.join(i.describe() for i in infos)}; "
                "choose one with --series UID",
                series=infos,
            )
        series_uid = infos[0].uid
    chosen = [i for i in infos if i.uid == series_uid]
    if not chosen:
        raise DicomError(
            f"{folder} holds no DICOM series {series_uid}; it holds {'; '.join(i.describe() for i in infos)}"
        )
    return folder, chosen[0], series[series_uid], notes


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


@contextlib.contextmanager
def _quiet_stderr():
    """Send what C libraries write to file descriptor 2 to the null device for the duration."""
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _sitk_pixels(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """One single-frame file decoded by SimpleITK (GDCM), rescale already applied; None when it cannot."""
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with _quiet_stderr():  # GDCM's JPEG and JPEG 2000 decoders print to the C stderr on bad data
            arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError:
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    return arr.reshape(size) if arr.size == size[0] * size[1] else None


def _decode(entry: _Entry, where: str) -> tuple[np.ndarray, bool]:
    """A file's frames ``(frames, rows, columns)`` as stored, and whether the rescale is already applied (GDCM)."""
    path = entry.path
    try:
        ds = pydicom.dcmread(path, force=entry.bare)
    except Exception as exc:  # pydicom raises many types for a broken file
        raise DicomError(f"{where}: {path.name} is truncated or corrupt ({type(exc).__name__})") from exc
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):  # a bare file: the syntax it was parsed in
        implicit, little = ds.original_encoding
        ds.ensure_file_meta()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    shape = (frames, int(ds.Rows), int(ds.Columns))
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomError(f"{where}: {path.name} has no pixel data")
    try:
        return ds.pixel_array.reshape(shape), False
    except Exception as exc:  # decoders raise many types
        syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
        if syntax is None or not UID(syntax).is_compressed:
            raise DicomError(
                f"{where}: {path.name} is truncated or corrupt: its pixel data cannot be read "
                f"({type(exc).__name__}: {short(str(exc), 120)})"
            ) from exc
        if frames == 1:
            pixels = _sitk_pixels(path, shape[1:])
            if pixels is not None:
                return pixels.reshape(shape), True
        syntax = UID(syntax)
        packages = DECODERS.get(str(syntax), "python-gdcm")
        install = f"pip install {packages}" + (" (or python-gdcm)" if packages != "python-gdcm" else "")
        if "all plugins are missing dependencies" in str(exc):
            cause = f"that no installed decoder reads; install one: {install}"
        else:
            cause = f"that neither pydicom nor GDCM can decode: the data is corrupt, or try another decoder: {install}"
        raise DicomError(
            f"{where}: {path.name} holds {syntax.name} pixel data (transfer syntax {syntax}) {cause}"
        ) from exc


def _values(raw: np.ndarray, rescaled: bool, plane: _Plane) -> np.ndarray:
    """A slice's values after the modality LUT or rescale slope and intercept (float64 when rescaled here)."""
    if rescaled:
        return raw
    if plane.entry.header.get("ModalityLUTSequence"):
        return pydicom.pixels.apply_modality_lut(raw, plane.entry.header)
    if plane.slope == 1 and plane.intercept == 0:
        return raw
    return raw.astype(np.float64) * plane.slope + plane.intercept


def _int_dtype(lo: float, hi: float) -> np.dtype:
    """The smallest integer type holding ``lo..hi`` (unsigned when ``lo >= 0``)."""
    kind = "uint" if lo >= 0 else "int"
    for bits in (8, 16, 32):
        info = np.iinfo(f"{kind}{bits}")
        if info.min <= lo and hi <= info.max:
            return np.dtype(f"{kind}{bits}")
    return np.dtype(f"{kind}64")


def _pixels(planes: list[_Plane], where: str) -> np.ndarray:
    """The sorted slices' values stacked ``(k, rows, columns)``: float32 when a rescale slope or intercept is
    fractional (or a value is), else the smallest integer type that holds them."""
    decoded: dict[int, tuple[np.ndarray, bool]] = {}
    for plane in planes:
        if id(plane.entry) not in decoded:
            decoded[id(plane.entry)] = _decode(plane.entry, where)
    slices = [(decoded[id(p.entry)][0][p.frame], decoded[id(p.entry)][1], p) for p in planes]
    fractional = any(not (float(p.slope).is_integer() and float(p.intercept).is_integer()) for p in planes)
    lo, hi = math.inf, -math.inf
    if not fractional:
        for raw, rescaled, plane in slices:
            values = _values(raw, rescaled, plane)
            if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
                fractional = True
                break
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    dtype = np.dtype(np.float32) if fractional else _int_dtype(lo, hi)
    stack = np.empty((len(planes), *planes[0].size), dtype=dtype)
    for k, (raw, rescaled, plane) in enumerate(slices):
        values = _values(raw, rescaled, plane)
        stack[k] = np.round(values) if dtype.kind in "iu" and values.dtype.kind == "f" else values
    return stack


def read_series(path: Path, series_uid: str | None = None, *, label: bool = False) -> Volume:
    """Read one DICOM image series into the canonical ``(z, y, x)`` LPS+ :class:`Volume` (spacing in mm).

    ``path`` is a folder (searched recursively) or one file of the series (which then picks its own series).
    ``series_uid`` chooses among several image series; without it a folder of several raises
    :class:`SeriesChoiceError` listing them. Values are the stored pixels through the modality LUT or rescale slope
    and intercept (CT in HU): float32 when a slope or intercept is fractional, else the smallest integer type that
    holds them; ``label=True`` makes them the smallest unsigned type (whole numbers >= 0 required).
    ``geometry.source_meta`` holds ``files`` (sorted by slice for single-frame series, each file once otherwise),
    ``frames`` (per slice ``k``: the index in ``files`` and the frame index in that file), ``sop_instance_uids``,
    ``series_uid``, ``modality`` and ``description``. Raises :class:`DicomError` for a series that is not one
    regular 3D grid or cannot be decoded; ``volume.issues`` lists the files left out of the folder.
    """
    path = Path(path)
    folder, info, entries, notes = _choose(path, series_uid)
    where = _where(info, folder)
    planes, normal, step = _ordered(_planes(entries, where), where)
    stack = _pixels(planes, where)
    files: list[Path] = []
    for plane in planes:
        if plane.entry.path not in files:
            files.append(plane.entry.path)
    first = planes[0]
    geometry = geometry_from_lps(
        first.position,
        (first.spacing[1], first.spacing[0], step),
        np.column_stack([first.row, first.col, normal]),
        (first.size[1], first.size[0], len(planes)),
        source_format="dicom",
        source_meta={
            "files": tuple(str(f) for f in files),
            "frames": tuple((files.index(p.entry.path), p.frame) for p in planes),
            "sop_instance_uids": tuple(str(p.entry.header.get("SOPInstanceUID", "")) for p in planes),
            "series_uid": info.uid,
            "modality": info.modality,
            "description": info.description,
        },
    )
    for note in notes:
        log.info(note)
    return canonical_volume(stack.transpose(2, 1, 0), geometry, path, label=label, issues=notes)


SEG_COPIES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
"""Type 2 patient and study attributes a SEG copies from its source (empty where the source lacks them)."""


def write_seg(
    path: Path, labels_zyx: np.ndarray, geometry: Geometry, label_names: dict[int, str] | None = None
) -> Path:
    """Write canonical ``(z, y, x)`` labels as a BINARY DICOM Segmentation of the series they were read from.

    One segment per nonzero label value present (segment numbers 1, 2, ... in increasing label value), named
    ``label_names[value]`` or ``label N``; SEG frame ``k`` lies on source slice ``k`` (empty frames are left out).
    ``geometry`` must come from :func:`read_series` and its files must still exist. Written atomically.
    """
    path = Path(path)
    if geometry.source_format != "dicom":
        raise DicomError(
            f"cannot write {path.name}: DICOM SEG needs a DICOM source series; these labels lie on a "
            f"{geometry.source_format} image (write NIfTI instead)"
        )
    meta = geometry.source_meta
    files = [Path(f) for f in meta.get("files", ())]
    frames = list(meta.get("frames", ()))
    gone = [f for f in files if not f.is_file()]
    if gone or not files:
        raise DicomError(
            f"cannot write {path.name}: {len(gone)} of the {len(files)} source files of the series are gone"
            + (f" (e.g. {gone[0]})" if gone else "")
            + "; a DICOM SEG must reference the series it was read from"
        )
    labels = as_label_array(np.asarray(labels_zyx), path)
    if labels.shape != geometry.shape_zyx:
        raise DicomError(
            f"cannot write {path.name}: labels of shape {labels.shape} do not fit the series' {geometry.shape_zyx} grid"
        )
    stack = geometry.to_source(labels).transpose(2, 1, 0)  # (k, rows, columns), slice k = sorted source slice k
    values = [int(v) for v in np.unique(stack) if v]
    if not values:
        raise DicomError(f"cannot write {path.name}: the labels are empty; a DICOM SEG needs at least one segment")
    sources = [pydicom.dcmread(f, stop_before_pixels=True, force=True) for f in files]
    for source in sources:  # anonymised exports drop type 2 attributes the SEG copies: present, empty, as DICOM allows
        for keyword in SEG_COPIES:
            if keyword not in source:
                setattr(source, keyword, "")
    uids = [str(s.get("SOPInstanceUID", "")) for s in sources]
    expected = list(meta.get("sop_instance_uids", ()))
    if expected and [uids[i] for i, _ in frames] != expected:
        raise DicomError(
            f"cannot write {path.name}: the source files in {files[0].parent} changed since they were read"
        )
    lut = np.zeros(values[-1] + 1, dtype=np.uint16)
    lut[values] = np.arange(1, len(values) + 1)
    segments = lut[stack].astype(np.uint8 if len(values) < 256 else np.uint16)
    if len(files) != len(frames):  # multi-frame source: SEG frames follow the source file's frame order
        if len(files) != 1:
            raise DicomError(
                f"cannot write {path.name}: a SEG of a series of several multi-frame files is not supported"
            )
        order = np.array([f for _, f in frames])
        segments = segments[np.argsort(order)]
    seg = _segmentation(sources, segments, values, label_names, meta)
    return atomic_write(path, seg.save_as, suffix=".dcm")


def _segmentation(sources: list[Dataset], segments: np.ndarray, values: list[int], names, meta) -> Dataset:
    """The highdicom Segmentation of ``segments`` ``(frames, rows, columns)`` holding segment numbers."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from napari_volseg import __version__

    algorithm = hd.AlgorithmIdentificationSequence(
        name="napari-volseg", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=str((names or {}).get(value, f"label {value}"))[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
        )
        for n, value in enumerate(values, start=1)
    ]
    try:
        number = int(sources[0].get("SeriesNumber") or 0)
    except (TypeError, ValueError):
        number = 0
    try:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=segments,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=number + 1000,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="napari-volseg",
            manufacturer_model_name="napari-volseg",
            software_versions=__version__,
            device_serial_number="none",
            content_label="VOLSEG",
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DicomError(f"cannot build a DICOM SEG of {meta.get('series_uid')}: {short(str(exc), 200)}") from exc
    seg.SeriesDescription = f"labels of {meta.get('description') or 'series'}"[:64]
    return seg


__all__ = [
    "SeriesInfo",
    "find_series",
    "holds_dicom",
    "is_dicom_file",
    "read_series",
    "series_uid_of",
    "write_seg",
]
