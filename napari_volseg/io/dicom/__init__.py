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

The package's modules:

* :mod:`.series`: finding DICOM files below a folder, :class:`SeriesInfo`, scanning and choosing a series,
  :func:`is_dicom_file`, :func:`holds_dicom`, :func:`find_series`, :func:`series_uid_of` and :func:`read_series`;
* :mod:`.planes`: one file's header (``_Entry``) and one 2D slice with its geometry (``_Plane``), read from the
  file's own tags or an enhanced multi-frame file's functional groups;
* :mod:`.checks`: the one-regular-grid checks (mixed sizes, spacings or orientations, repeated positions, gantry
  tilt, irregular or missing slices) and the sorting of slices along the normal (``_ordered``);
* :mod:`.pixels`: decoding the pixel data (pydicom, then SimpleITK/GDCM for compressed data pydicom cannot read),
  the modality LUT or rescale, and the choice of the stacked volume's dtype;
* :mod:`.seg`: :func:`write_seg`, labels written as a highdicom BINARY DICOM Segmentation of their source series.
"""

from napari_volseg.io.dicom.seg import write_seg
from napari_volseg.io.dicom.series import (
    DICOM_SUFFIXES,
    SeriesInfo,
    find_series,
    holds_dicom,
    is_dicom_file,
    read_geometry,
    read_series,
    series_uid_of,
)

__all__ = [
    "read_geometry",
    "DICOM_SUFFIXES",
    "SeriesInfo",
    "find_series",
    "holds_dicom",
    "is_dicom_file",
    "read_series",
    "series_uid_of",
    "write_seg",
]
