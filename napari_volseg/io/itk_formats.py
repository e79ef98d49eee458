"""NRRD (``.nrrd``, ``.nhdr``, Slicer's ``.seg.nrrd``) and MetaImage (``.mha``, ``.mhd``) through SimpleITK: one
backend of the front door ``io.volumes``.

SimpleITK is what nnU-Net's ``SimpleITKIO`` and 3D Slicer use for these formats: it reads either world frame a NRRD
header declares (RAS or LPS) into ITK's LPS+ geometry, detached headers and gzip/raw encodings. Voxels come back in
the canonical ``(z, y, x)`` LPS+ convention of :mod:`napari_volseg.io.geometry`; labels are written in the source's
voxel order, with its origin, spacing and direction (its world geometry; a RAS-declared NRRD is written as LPS, the
same voxels at the same places).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import SimpleITK as sitk

from napari_volseg.errors import OutputError, UnsupportedShapeError, VolumeFormatError
from napari_volseg.io.geometry import Geometry, Volume, as_label_array, canonical_volume, geometry_from_lps
from napari_volseg.io.nifti import MAX_VOXELS
from napari_volseg.outputs import atomic_write
from napari_volseg.validation import short

FORMATS = {".seg.nrrd": "nrrd", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage", ".mhd": "metaimage"}
"""File name endings this backend reads, longest first, and the format each names."""
DETACHED = (".nhdr", ".mhd")
"""Header-only files whose voxels lie in a second file beside them."""
SEGMENTATION_MASTER = "Binary labelmap"


def suffix_of(path: str | os.PathLike) -> str | None:
    """The ending of ``path`` this backend reads (``.seg.nrrd`` before ``.nrrd``), or None."""
    name = str(path).lower()
    return next((s for s in FORMATS if name.endswith(s)), None)


def _itk_error(path: Path, exc: Exception, doing: str) -> VolumeFormatError:
    """ITK's exceptions span many lines with C++ file names: keep its own description, one line."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    said = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("description:")), "")
    said = said or (lines[-1] if lines else type(exc).__name__)
    return VolumeFormatError(f"cannot {doing} {path.name}: {short(said, 200)}")


def _information(path: Path) -> sitk.ImageFileReader:
    import SimpleITK as sitk  # imported when first needed: its library alone is 90 MB of memory

    if not path.exists():
        raise VolumeFormatError(f"no such file: {path}")
    if path.is_dir():
        raise VolumeFormatError(f"{path} is a folder, not a {FORMATS[suffix_of(path) or '.nrrd']} file")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _itk_error(path, exc, "read") from exc
    return reader


def _check(reader: sitk.ImageFileReader, path: Path, label: bool) -> tuple[int, ...]:
    """The spatial size ``(i, j, k)``, after refusing from the header alone what cannot be a volume."""
    import SimpleITK as sitk  # imported when first needed: its library alone is 90 MB of memory

    size = tuple(int(s) for s in reader.GetSize())
    while len(size) > 3 and size[-1] == 1:
        size = size[:-1]
    components = int(reader.GetNumberOfComponents())
    if len(size) != 3:
        raise UnsupportedShapeError(f"{path.name} is a {len(size)}D image of size {size}; expected a 3D volume")
    if min(size) < 1:
        raise UnsupportedShapeError(f"{path.name} has an empty axis (size {size}): it holds no voxels")
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if "complex" in pixel:
        raise VolumeFormatError(f"{path.name} holds complex voxels; expected real-valued intensities or labels")
    if label and components > 1:
        raise UnsupportedShapeError(
            f"{path.name} holds {components} values per voxel (overlapping segments in layers?); labels must be one "
            "label map: in 3D Slicer, export the segmentation as a labelmap volume"
        )
    voxels = int(np.prod(size, dtype=object)) * components
    if voxels > MAX_VOXELS:
        raise UnsupportedShapeError(
            f"{path.name} declares {' x '.join(map(str, size))} x {components} = {voxels:.3g} values, more than the "
            f"{MAX_VOXELS:.3g} napari-volseg reads: crop or downsample the scan first"
        )
    return size


def _geometry(reader_or_image, size: tuple[int, ...], fmt: str, meta: dict) -> Geometry:
    dim = len(reader_or_image.GetSize())
    direction = np.asarray(reader_or_image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    return geometry_from_lps(
        reader_or_image.GetOrigin()[:3], reader_or_image.GetSpacing()[:3], direction, size[:3], fmt, meta
    )


def _segments(reader: sitk.ImageFileReader) -> dict[int, str]:
    """Slicer's ``.seg.nrrd`` segment names by label value (layer 0), from ``SegmentN_LabelValue`` / ``_Name``."""
    keys = set(reader.GetMetaDataKeys())
    names: dict[int, str] = {}
    n = 0
    while f"Segment{n}_Name" in keys:
        value = reader.GetMetaData(f"Segment{n}_LabelValue") if f"Segment{n}_LabelValue" in keys else str(n + 1)
        try:
            names[int(value)] = reader.GetMetaData(f"Segment{n}_Name")
        except ValueError:
            pass
        n += 1
    return names


def read_geometry(path: str | os.PathLike) -> Geometry:
    """The geometry from the header alone (no voxel is read)."""
    path = Path(path)
    reader = _information(path)
    size = _check(reader, path, label=False)
    meta = {"segments": _segments(reader), "components": int(reader.GetNumberOfComponents())}
    return _geometry(reader, size, FORMATS[suffix_of(path)], meta)


def load(path: str | os.PathLike, *, label: bool = False) -> Volume:
    """Read a NRRD or MetaImage file into canonical ``(z, y, x)`` (``(c, z, y, x)`` for several values per voxel).

    Raises :class:`VolumeFormatError` for an unreadable or truncated file and :class:`UnsupportedShapeError` for
    anything but a 3D volume (labels: one value per voxel)."""
    import SimpleITK as sitk  # imported when first needed: its library alone is 90 MB of memory

    path = Path(path)
    reader = _information(path)
    size = _check(reader, path, label)
    try:
        image = reader.Execute()
    except RuntimeError as exc:  # the header was read: the voxels are missing or damaged
        said = str(_itk_error(path, exc, "read")).split(": ", 1)[-1]
        raise VolumeFormatError(f"{path.name} is truncated or corrupt: its voxels cannot be read ({said})") from exc
    array = sitk.GetArrayFromImage(image)  # (k, j, i) or (k, j, i, c); higher singleton axes first
    array = array.reshape(
        tuple(reversed(size)) + ((array.shape[-1],) if image.GetNumberOfComponentsPerPixel() > 1 else ())
    )
    source = array.transpose(2, 1, 0) if array.ndim == 3 else array.transpose(2, 1, 0, 3)
    geometry = _geometry(image, size, FORMATS[suffix_of(path)], {"segments": _segments(reader)})
    return canonical_volume(np.ascontiguousarray(source), geometry, path, label=label)


def _image(source_ijk: np.ndarray, geometry: Geometry) -> sitk.Image:
    import SimpleITK as sitk  # imported when first needed: its library alone is 90 MB of memory

    image = sitk.GetImageFromArray(np.ascontiguousarray(source_ijk.transpose(2, 1, 0)))
    origin, spacing, direction = geometry.lps
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def _segmentation_keys(image: sitk.Image, labels: np.ndarray, names: dict[int, str]) -> None:
    """The header keys 3D Slicer reads a ``.seg.nrrd`` label map by: one segment per label value present."""
    image.SetMetaData("Segmentation_MasterRepresentation", SEGMENTATION_MASTER)
    image.SetMetaData("Segmentation_ContainedRepresentationNames", SEGMENTATION_MASTER + "|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    palette = ((0.9, 0.6, 0.1), (0.2, 0.8, 0.4), (0.1, 0.5, 0.9), (1.0, 0.2, 0.4), (0.7, 0.4, 0.9))
    extent = " ".join(f"0 {n - 1}" for n in labels.shape)
    for n, value in enumerate(int(v) for v in np.unique(labels) if v):
        name = names.get(value, f"label {value}")
        image.SetMetaData(f"Segment{n}_ID", f"Segment_{value}")
        image.SetMetaData(f"Segment{n}_Name", name)
        image.SetMetaData(f"Segment{n}_NameAutoGenerated", "0")
        image.SetMetaData(f"Segment{n}_LabelValue", str(value))
        image.SetMetaData(f"Segment{n}_Layer", "0")
        image.SetMetaData(f"Segment{n}_Color", " ".join(f"{c:g}" for c in palette[n % len(palette)]))
        image.SetMetaData(f"Segment{n}_ColorAutoGenerated", "0")
        image.SetMetaData(f"Segment{n}_Extent", extent)
        image.SetMetaData(f"Segment{n}_Tags", "|")


def _write(image: sitk.Image, path: Path) -> Path:
    """Write atomically: a detached header's voxel file first, the header last, each renamed into place."""
    import SimpleITK as sitk  # imported when first needed: its library alone is 90 MB of memory

    suffix = suffix_of(path)
    if suffix in DETACHED:  # two files: each renamed into place, the voxels first, so a header never names a half file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        try:
            sitk.WriteImage(image, str(staging / path.name), True)
            header = staging / path.name
            for part in sorted(staging.iterdir(), key=lambda p: p == header):
                os.replace(part, path.parent / part.name)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return path
    return atomic_write(path, lambda tmp: sitk.WriteImage(image, tmp, True), suffix=suffix)


def save_labels(
    labels_zyx: np.ndarray, geometry: Geometry, path: str | os.PathLike, label_names: dict[int, str] | None = None
) -> Path:
    """Write canonical ``(z, y, x)`` labels as NRRD or MetaImage (by ``path``'s ending) in the source grid: the source's
    voxel order, origin, spacing and direction; ``.seg.nrrd`` adds the segment keys 3D Slicer reads."""
    path = Path(path)
    if suffix_of(path) is None:
        raise VolumeFormatError(f"cannot write {path.name}: expected {', '.join(FORMATS)}")
    labels = as_label_array(np.asarray(labels_zyx), path)
    source = geometry.to_source(labels)
    image = _image(source, geometry)
    if suffix_of(path) == ".seg.nrrd":
        _segmentation_keys(image, source, {**dict(geometry.source_meta.get("segments", {})), **(label_names or {})})
    try:
        return _write(image, path)
    except RuntimeError as exc:
        raise _itk_error(path, exc, "write") from exc


def save_image(data_zyx: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write a canonical ``(z, y, x)`` image in the source grid, keeping its dtype (bool as uint8)."""
    path = Path(path)
    data = np.asarray(data_zyx)
    data = data.astype(np.uint8) if data.dtype == bool else data
    try:
        return _write(_image(geometry.to_source(data), geometry), path)
    except RuntimeError as exc:
        raise _itk_error(path, exc, "write") from exc
