"""DICOM SEG through highdicom: labels on a series read by :func:`~napari_volseg.io.dicom.series.read_series`
written as a BINARY DICOM Segmentation that references that series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from napari_volseg.errors import DicomError
from napari_volseg.io.geometry import Geometry, as_label_array
from napari_volseg.outputs import atomic_write
from napari_volseg.validation import short

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
    try:
        sources = [pydicom.dcmread(f, stop_before_pixels=True, force=True) for f in files]
    except (OSError, InvalidDicomError, ValueError, EOFError) as exc:
        raise DicomError(
            f"cannot write {path.name}: a source file of the series can no longer be read ({type(exc).__name__})"
        ) from exc
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
    segments = np.where(stack > 0, np.searchsorted(values, stack) + 1, 0)  # label value -> segment number 1..N
    segments = segments.astype(np.uint8 if len(values) < 256 else np.uint16)
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
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,  # a model's prediction
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
