"""Decoding a DICOM series' pixels: pydicom first, SimpleITK (GDCM) for compressed data it cannot read, then the
modality LUT or rescale slope and intercept, stacked in float32 or the smallest integer type that holds them."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from napari_volseg.errors import DicomError
from napari_volseg.io.dicom.planes import _Entry, _Plane
from napari_volseg.validation import short

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
