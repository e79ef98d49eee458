"""The one front door for volume files: NIfTI, NRRD, MetaImage and DICOM series, read and written alike.

Every module of napari-volseg that reads or writes a scan or a label file goes through here, so a new format is
one backend module and one line in :data:`BACKENDS`:

- ``read(path)`` -> :class:`Volume` in the canonical ``(z, y, x)`` LPS+ convention (``io.geometry``) with the file's
  exact geometry; ``path`` is a file, or a folder (or any file) of a DICOM series.
- ``write_labels(path, labels, like)`` writes labels in ``like``'s grid in the format ``path`` names:
  ``.nii`` / ``.nii.gz`` (nibabel), ``.nrrd`` / ``.seg.nrrd`` / ``.mha`` / ``.mhd`` (SimpleITK), ``.dcm`` (a DICOM
  Segmentation object referencing the source series, highdicom).
- ``labels_name(source, out_format)`` names a source's label file: by default in the source's own format (NIfTI
  for a DICOM series, which has no label format of its own but DICOM SEG).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_volseg.errors import VolsegError, VolumeFormatError
from napari_volseg.io import dicom, itk_formats, nifti
from napari_volseg.io.geometry import Geometry, Volume

__all__ = [
    "OUT_FORMATS",
    "Geometry",
    "Volume",
    "case_id",
    "channels_of",
    "distinct_scans",
    "format_of",
    "holds_dicom",
    "is_volume_file",
    "is_scan_file",
    "is_volume_path",
    "label_suffix",
    "labels_name",
    "list_series",
    "read",
    "read_geometry",
    "series_case_id",
    "series_case_ids",
    "write_image",
    "write_labels",
]

OUT_FORMATS = {
    "source": None,
    "nifti": ".nii.gz",
    "nrrd": ".nrrd",
    "seg.nrrd": ".seg.nrrd",
    "mha": ".mha",
    "dicom-seg": ".dcm",
}
"""Label file formats by the name a user picks (``--out-format``): ``source`` writes each input's own format."""
SOURCE_SUFFIX = {"nrrd": ".nrrd", "metaimage": ".mha", "dicom": ".nii.gz", "nifti": ".nii.gz"}
"""The label file ending for each source format under ``source`` (a ``.mhd`` keeps ``.mhd``; NIfTI is always
``.nii.gz``, as predictions always were)."""
DICOM_SUFFIXES = dicom.DICOM_SUFFIXES


def _is(path: Path, kind: str) -> bool:
    """``path.is_dir()`` / ``is_file()`` that says False for a name the file system refuses (too long, no access)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except OSError:
        return False


def format_of(path: str | os.PathLike) -> str | None:
    """``nifti``, ``nrrd``, ``metaimage`` or ``dicom`` for a file (by its ending; a DICOM file also by its content,
    as PACS exports name files by UID or number) or a folder holding DICOM files; None for anything else."""
    p = Path(path)
    if nifti.is_nifti_path(p):
        return "nifti"
    suffix = itk_formats.suffix_of(p)
    if suffix is not None:
        return itk_formats.FORMATS[suffix]
    if p.name.lower().endswith(DICOM_SUFFIXES):
        return "dicom"
    if _is(p, "dir"):
        return "dicom" if dicom.holds_dicom(p) else None
    if _is(p, "file") and dicom.is_dicom_file(p):
        return "dicom"
    return None


def is_scan_file(path: str | os.PathLike) -> bool:
    """A file that is a scan by its name alone: NIfTI, NRRD or MetaImage, not a segmentation (``.seg.nrrd``) and not
    a DICOM slice (a series is a folder)."""
    name = str(path).lower()
    return (nifti.is_nifti_path(name) or itk_formats.suffix_of(name) is not None) and not name.endswith(".seg.nrrd")


def is_volume_file(path: str | os.PathLike) -> bool:
    """True for a file this door reads by its name: NIfTI, NRRD, MetaImage or ``.dcm`` (no content is read)."""
    name = str(path).lower()
    return nifti.is_nifti_path(name) or itk_formats.suffix_of(name) is not None or name.endswith(DICOM_SUFFIXES)


def is_volume_path(path: str | os.PathLike) -> bool:
    """True for a file or folder :func:`read` takes (a folder: one holding a DICOM series)."""
    return format_of(path) is not None


def case_id(path: str | os.PathLike, like: Geometry | None = None) -> str:
    """The case name of a volume path: the file name without its format ending (``la_003.nii.gz`` -> ``la_003``,
    ``heart.seg.nrrd`` -> ``heart``); a DICOM series is named by its folder (a ``.dcm`` file by the folder holding it),
    and where that folder holds several series (``like``: the series' geometry says so) by folder and series number,
    ``export_s3``, so that two series of one folder never share a name."""
    p = Path(path)
    meta = like.source_meta if like is not None and like.source_format == "dicom" else {}
    if meta.get("series_in_folder", 1) > 1:
        own = Path(meta.get("series_folder", meta["folder"]))
        if own != Path(meta["folder"]):  # each series in a subfolder of its own: named by it, as predict names it
            return own.name
        return series_case_id(Path(meta["folder"]).name, meta.get("series_number"), meta["series_uid"])
    name = p.name
    lower = name.lower()
    for suffix in (*nifti.NIFTI_SUFFIXES, *itk_formats.FORMATS):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    if _is(p, "dir"):
        return p.absolute().name
    if format_of(p) == "dicom":
        return p.absolute().parent.name
    return name


def series_case_id(folder_name: str, number: int | None, uid: str) -> str:
    """The case name of one of several DICOM series in a folder: ``<folder>_s<SeriesNumber>``, or the UID's last part
    where the series has no number of its own (none, or one another series of the folder shares)."""
    return f"{folder_name}_s{number if number is not None else uid.rsplit('.', 1)[-1]}"


def series_case_ids(folder_name: str, listed: list) -> dict[str, str]:
    """:func:`series_case_id` of every series of a folder (``dicom.SeriesInfo``), by SeriesInstanceUID."""
    numbers = [s.number for s in listed]
    return {
        s.uid: series_case_id(folder_name, s.number if numbers.count(s.number) == 1 else None, s.uid) for s in listed
    }


def read(path: str | os.PathLike, *, label: bool = False, series: str | None = None) -> Volume:
    """The volume at ``path`` in canonical ``(z, y, x)`` (``(c, z, y, x)`` for several channels), with its geometry.

    ``label=True``: whole numbers >= 0, returned as the smallest unsigned type. ``series``: the SeriesInstanceUID
    to read from a folder of several DICOM series (without it such a folder raises ``SeriesChoiceError``, which
    lists them). Every failure is a one-line ``VolsegError``."""
    p = Path(path)
    fmt = format_of(p)
    if fmt == "nifti":
        return nifti.load(p, label=label)
    if fmt in ("nrrd", "metaimage"):
        return itk_formats.load(p, label=label)
    if fmt == "dicom":
        return dicom.read_series(p, series, label=label)
    if not p.exists():
        raise VolumeFormatError(f"no such file or folder: {p}")
    if p.is_dir():
        raise VolumeFormatError(f"{p.name} holds no DICOM series (a folder opens as a DICOM series or an MSD task)")
    raise VolumeFormatError(f"{p.name} is not a volume napari-volseg reads ({describe_formats()})")


def file_digest(path: str | os.PathLike) -> str | None:
    """A short SHA-256 of a scan file's bytes: the same scan under another name has the same digest (None for a
    folder, a DICOM series, or a file that cannot be read)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, TypeError):
        return None
    return digest.hexdigest()[:24]


def read_geometry(path: str | os.PathLike, series: str | None = None) -> Geometry:
    """The geometry of the volume at ``path``, from its header(s) alone (no voxel is decoded)."""
    p = Path(path)
    fmt = format_of(p)
    if fmt == "nifti":
        return nifti.read_geometry(p)
    if fmt in ("nrrd", "metaimage"):
        return itk_formats.read_geometry(p)
    if fmt == "dicom":
        return dicom.read_geometry(p, series)
    return read(p, series=series).geometry


def list_series(path: str | os.PathLike) -> list:
    """The DICOM image series in a folder (searched recursively) as ``io.dicom.SeriesInfo`` (uid, description,
    modality, files in slice order)."""
    return dicom.find_series(Path(path))[0]


def holds_dicom(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds DICOM files (a cheap look at a few of them)."""
    return dicom.holds_dicom(Path(folder))


def distinct_scans(paths: list[Path]) -> list[Path]:
    """``paths`` without the DICOM files of a series already named (dropping 300 slices of one series is one scan,
    not 300 reads of it): the first file of each series stands for it."""
    seen: set = set()
    kept = []
    for p in paths:
        key = p
        if _is(p, "file") and format_of(p) == "dicom":
            try:
                key = ("series", p.absolute().parent, dicom.series_uid_of(p))
            except VolsegError:
                key = p
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept


def channels_of(path: str | os.PathLike, series: str | None = None) -> int:
    """How many channels (values per voxel, or a NIfTI's 4th axis) the volume at ``path`` holds, from its header."""
    geometry = read_geometry(path, series)
    if geometry.source_format == "nifti":
        return int(np.prod(geometry.header.get_data_shape()[3:], dtype=int))
    return int(geometry.source_meta.get("components", 1))


def describe_formats() -> str:
    return "NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr/.seg.nrrd, MetaImage .mha/.mhd, or a DICOM series folder"


def labels_name(source: str | os.PathLike, out_format: str = "source", like: Geometry | None = None) -> str:
    """The file name of ``source``'s labels: its case name (nnU-Net's channel suffix ``_0000`` dropped) and
    :func:`label_suffix`. ``like`` (the source's geometry) decides the format where the path alone cannot."""
    stem = case_id(source, like)
    if stem.endswith("_0000"):
        stem = stem[:-5]
    fmt = like.source_format if like is not None else (format_of(source) or "nifti")
    return stem + label_suffix(fmt, out_format, Path(source).name)


def label_suffix(source_format: str, out_format: str = "source", source_name: str = "") -> str:
    """The ending of a label file for a source of ``source_format`` under ``out_format`` (:data:`OUT_FORMATS`):
    ``source`` keeps the source's own format (``.nii.gz`` for NIfTI, a ``.mhd`` stays ``.mhd``; NIfTI for a DICOM
    series, whose own label format, DICOM SEG, is asked for by name)."""
    if out_format not in OUT_FORMATS:
        raise VolumeFormatError(f"unknown label format {out_format!r}: choose one of {', '.join(OUT_FORMATS)}")
    suffix = OUT_FORMATS[out_format]
    if suffix is not None:
        return suffix
    return ".mhd" if source_name.lower().endswith(".mhd") else SOURCE_SUFFIX.get(source_format, ".nii.gz")


def write_labels(
    path: str | os.PathLike, labels_zyx: np.ndarray, like: Geometry, label_names: dict[int, str] | None = None
) -> Path:
    """Write canonical ``(z, y, x)`` labels in ``like``'s grid (its voxel order, affine or origin / spacing /
    direction), in the format ``path``'s ending names; atomically (a temporary file, then a rename)."""
    p = Path(path)
    name = p.name.lower()
    if nifti.is_nifti_path(name):
        return nifti.save_labels(labels_zyx, like, p)
    if itk_formats.suffix_of(name) is not None:
        return itk_formats.save_labels(labels_zyx, like, p, label_names)
    if name.endswith(".dcm"):
        return dicom.write_seg(p, labels_zyx, like, label_names)
    raise VolumeFormatError(
        f"cannot write labels as {p.name}: end the name in .nii.gz, .nii, .nrrd, .seg.nrrd, .mha, .mhd or .dcm"
    )


def write_image(path: str | os.PathLike, data_zyx: np.ndarray, like: Geometry) -> Path:
    """Write a canonical ``(z, y, x)`` image in ``like``'s grid as NIfTI, NRRD or MetaImage (by ``path``'s ending)."""
    p = Path(path)
    if nifti.is_nifti_path(p.name):
        return nifti.save_image(data_zyx, like, p)
    if itk_formats.suffix_of(p.name) is not None:
        return itk_formats.save_image(data_zyx, like, p)
    raise VolumeFormatError(f"cannot write an image as {p.name}: end the name in .nii.gz, .nii, .nrrd or .mha")
