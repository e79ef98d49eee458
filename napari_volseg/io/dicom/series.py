"""DICOM image series through pydicom: finding the files of a series, choosing one, and reading it into a Volume.

A series is found by its SeriesInstanceUID among every DICOM file below a folder (any file names, nested
subfolders, with or without the 128-byte preamble); :func:`read_series` places its slices (:mod:`.planes`),
checks and sorts them (:mod:`.checks`) and decodes them (:mod:`.pixels`). See the package docstring for the
voxel index convention.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from napari_volseg.errors import DicomError, SeriesChoiceError
from napari_volseg.io.dicom.checks import _ordered
from napari_volseg.io.dicom.pixels import _pixels
from napari_volseg.io.dicom.planes import _Entry, _planes
from napari_volseg.io.geometry import Geometry, Volume, canonical_volume, geometry_from_lps
from napari_volseg.validation import short

log = logging.getLogger(__name__)

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
"""Names that make a file without the 128-byte preamble worth parsing as DICOM."""
PEEK_FILES = 48
""":func:`holds_dicom` looks at no more files than this."""


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


def _choose(path: Path, series_uid: str | None) -> tuple[Path, SeriesInfo, list[_Entry], list[str], list[SeriesInfo]]:
    """The folder, the chosen series, its files' entries, the notes on what was skipped, and every image series the
    folder holds."""
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
    return folder, chosen[0], series[series_uid], notes, infos


def _series(path: Path, series_uid: str | None) -> tuple[Geometry, list, str, list[str]]:
    """The checked geometry of a series from its headers alone, its slices in order, where it is (for messages) and
    the notes on what was skipped."""
    folder, info, entries, notes, infos = _choose(path, series_uid)
    where = _where(info, folder)
    planes, normal, step = _ordered(_planes(entries, where), where)
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
            "series_number": info.number if [i.number for i in infos].count(info.number) == 1 else None,
            "series_in_folder": len(infos),
            "folder": str(folder),
            "series_folder": os.path.commonpath([str(f) for f in files]) if len(files) > 1 else str(files[0].parent),
            "modality": info.modality,
            "description": info.description,
        },
    )
    return geometry, planes, where, notes


def read_geometry(path: Path, series_uid: str | None = None) -> Geometry:
    """The geometry of a series (as :func:`read_series` gives it) from its headers alone: no pixel is decoded."""
    return _series(Path(path), series_uid)[0]


def read_series(path: Path, series_uid: str | None = None, *, label: bool = False) -> Volume:
    """Read one DICOM image series into the canonical ``(z, y, x)`` LPS+ :class:`Volume` (spacing in mm).

    ``path`` is a folder (searched recursively) or one file of the series (which then picks its own series).
    ``series_uid`` chooses among several image series; without it a folder of several raises
    :class:`SeriesChoiceError` listing them. Values are the stored pixels through the modality LUT or rescale slope
    and intercept (CT in HU): float32 when a slope or intercept is fractional, else the smallest integer type that
    holds them; ``label=True`` makes them the smallest unsigned type (whole numbers >= 0 required).
    ``geometry.source_meta`` holds ``files`` (sorted by slice for single-frame series, each file once otherwise),
    ``frames`` (per slice ``k``: the index in ``files`` and the frame index in that file), ``sop_instance_uids``,
    ``series_uid``, ``series_number`` (None where another series of the folder shares it), ``series_in_folder`` (how many image series its folder holds), ``folder``,
    ``modality`` and ``description``. Raises :class:`DicomError` for a series that is not one
    regular 3D grid or cannot be decoded; ``volume.issues`` lists the files left out of the folder.
    """
    path = Path(path)
    geometry, planes, where, notes = _series(path, series_uid)
    stack = _pixels(planes, where)
    for note in notes:
        log.info(note)
    return canonical_volume(stack.transpose(2, 1, 0), geometry, path, label=label, issues=notes)
