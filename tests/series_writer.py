"""Write a DICOM series slice by slice with pydicom, independently of the package's reader (tests only)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from napari_volseg.io.geometry import Volume

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def write_series(
    folder: Path, volume: Volume, modality: str = "MR", seed: int = 0, description: str = "test", number: int = 1
) -> Path:
    """Write ``volume`` as one DICOM series in ``folder``: one file per slice of its source grid's third axis, named
    at random, InstanceNumbers shuffled. The slices carry the geometry's LPS origin, direction and spacing, so the
    series and the volume's own file describe the same voxels at the same world positions."""
    folder.mkdir(parents=True, exist_ok=True)
    origin, spacing, direction = volume.geometry.lps
    source = volume.geometry.to_source(volume.data)  # (i, j, k): i columns, j rows, k slices
    if not np.issubdtype(source.dtype, np.integer):
        source = np.round(source).astype(np.int16)
    source = source.astype(np.int16 if source.min() < 0 else np.uint16)
    rng = random.Random(seed)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    numbers = list(range(1, source.shape[2] + 1))
    rng.shuffle(numbers)
    for k in range(source.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_STORAGE if modality == "CT" else MR_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = folder / f"{rng.getrandbits(40):010x}.dcm"
        ds = FileDataset(str(name), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = modality, description, number
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.StudyDate = "anon", "Anonymous^Patient", "20260101"
        ds.InstanceNumber = numbers[k]
        position = origin + k * spacing[2] * direction[:, 2]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        pixels = np.ascontiguousarray(source[:, :, k].T)  # (rows j, columns i)
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
        ds.PixelData = pixels.tobytes()
        pydicom.dcmwrite(name, ds, enforce_file_format=True)
    return folder
