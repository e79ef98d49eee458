"""DICOM series: slices written here one by one with pydicom, read back against nibabel on the same scan."""

from __future__ import annotations

import copy
import math

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    BasicTextSRStorage,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    MRImageStorage,
    RTStructureSetStorage,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from napari_volseg.errors import DicomError, LabelValueError, SeriesChoiceError
from napari_volseg.io import dicom, nifti
from napari_volseg.io.geometry import LPS_FROM_RAS, geometry_from_spacing

SHAPE_IJK = (8, 10, 12)  # columns, rows, slices
SPACING_IJK = (0.7, 0.9, 2.5)  # mm: PixelSpacing[1], PixelSpacing[0], slice step
ORIGIN = (-41.25, 17.5, -103.0)  # LPS+ mm


def _volume(offset: int = 0) -> np.ndarray:
    """A distinct int16 value in every voxel, indexed (i, j, k)."""
    return (np.arange(math.prod(SHAPE_IJK), dtype=np.int16).reshape(SHAPE_IJK) + offset).astype(np.int16)


def _rotation(z_deg: float, x_deg: float) -> np.ndarray:
    cz, sz = math.cos(math.radians(z_deg)), math.sin(math.radians(z_deg))
    cx, sx = math.cos(math.radians(x_deg)), math.sin(math.radians(x_deg))
    return np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])


def _ds(values) -> list:
    return [DSfloat(float(v), auto_format=True) for v in values]


def _slices(
    vol_ijk=None,
    row=(1, 0, 0),
    col=(0, 1, 0),
    *,
    stack_sign: int = 1,
    modality: str = "CT",
    slope: float = 1,
    intercept: float = 0,
    series_uid: str | None = None,
    number: int = 3,
    description: str = "AX TEST",
) -> list[Dataset]:
    """One single-frame dataset per slice ``k`` of ``vol_ijk`` (stored values = (value - intercept) / slope),
    slice k at ORIGIN + k * step * stack_sign * (row x col), InstanceNumbers shuffled."""
    vol = _volume() if vol_ijk is None else vol_ijk
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col)
    series_uid = series_uid or generate_uid()
    study, frame_of_reference = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    numbers = np.random.default_rng(7).permutation(vol.shape[2]) + 1
    out = []
    for k in range(vol.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = modality
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Phantom", "P1", "19700101", "O"
        ds.StudyInstanceUID, ds.StudyID, ds.StudyDate, ds.StudyTime = study, "1", "20240101", "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.Manufacturer = "A1", "", "test"
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, number, description
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.InstanceNumber = int(numbers[k])
        ds.ImagePositionPatient = _ds(np.asarray(ORIGIN) + k * SPACING_IJK[2] * stack_sign * normal)
        ds.ImageOrientationPatient = _ds([*row, *col])
        ds.PixelSpacing = _ds([SPACING_IJK[1], SPACING_IJK[0]])
        ds.SliceThickness = DSfloat(SPACING_IJK[2], auto_format=True)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        if slope != 1 or intercept != 0:
            ds.RescaleSlope, ds.RescaleIntercept = DSfloat(slope), DSfloat(intercept)
        pixels = np.ascontiguousarray(((vol[:, :, k].T - intercept) / slope).astype(np.int16))
        _set_pixels(ds, pixels)
        out.append(ds)
    return out


def _set_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.astype(np.int16).tobytes()


def _save(folder, datasets, *, nested: bool = False, bare: bool = False, seed: int = 0) -> list:
    """Write in random order under random names (some without suffix), in subfolders when ``nested``;
    ``bare``: implicit VR without preamble or file meta."""
    rng = np.random.default_rng(seed)
    paths = []
    for n in rng.permutation(len(datasets)):
        ds = datasets[n]
        sub = folder / ("a/b" if n % 3 == 0 else "c" if n % 3 == 1 else "") if nested else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / (f"{rng.integers(1 << 40):x}" + (".dcm" if n % 2 else ""))
        if bare:
            ds = copy.deepcopy(ds)
            del ds.file_meta
            ds.save_as(path, implicit_vr=True, little_endian=True)
        else:
            ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _nifti_of(tmp_path, vol_ijk, row, col, stack_sign=1):
    """The same scan as a NIfTI written by nibabel: affine = LPS->RAS of the DICOM geometry, loaded by nifti.load."""
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col) * stack_sign
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ np.column_stack([row, col, normal]) @ np.diag(SPACING_IJK)
    affine[:3, 3] = LPS_FROM_RAS @ np.asarray(ORIGIN)
    path = tmp_path / "same.nii.gz"
    nib.save(nib.Nifti1Image(vol_ijk, affine), str(path))
    return nifti.load(path)


def _one_line_error(exc_type, call, *phrases):
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message, message
    return info.value


OBLIQUE = _rotation(20, 15)
ORIENTATIONS = {
    "axial": ((1, 0, 0), (0, 1, 0), 1),
    "axial-flipped": ((-1, 0, 0), (0, -1, 0), 1),
    "axial-stacked-down": ((1, 0, 0), (0, 1, 0), -1),
    "sagittal": ((0, 1, 0), (0, 0, -1), 1),
    "coronal": ((1, 0, 0), (0, 0, -1), 1),
    "coronal-flipped": ((-1, 0, 0), (0, 0, 1), 1),
    "oblique": (tuple(OBLIQUE[:, 0]), tuple(OBLIQUE[:, 1]), 1),
}


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_series_reads_like_the_same_scan_in_nifti(tmp_path, name):
    row, col, sign = ORIENTATIONS[name]
    vol = _volume()
    _save(tmp_path / "dcm", _slices(vol, row, col, stack_sign=sign), nested=True)
    (tmp_path / "dcm" / "README.txt").write_text("not a scan\n")
    got = dicom.read_series(tmp_path / "dcm")
    want = _nifti_of(tmp_path, vol, row, col, sign)
    np.testing.assert_array_equal(got.data, want.data)
    np.testing.assert_allclose(got.geometry.canonical_affine_xyz, want.geometry.canonical_affine_xyz, atol=1e-4)
    assert got.geometry.source_format == "dicom"
    np.testing.assert_allclose(sorted(got.spacing), sorted(SPACING_IJK), atol=1e-6)
    assert got.data.dtype == np.uint16 and got.data.shape == want.data.shape
    assert any("README.txt" in note and "not DICOM" in note for note in got.issues)


def test_axial_spacing_and_source_order(tmp_path):
    files = _save(tmp_path, _slices())
    vol = dicom.read_series(tmp_path)
    assert vol.spacing == pytest.approx((2.5, 0.9, 0.7))
    assert vol.data.shape == (12, 10, 8)
    meta = vol.geometry.source_meta
    along = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in meta["files"]]
    assert along == sorted(along) and sorted(meta["files"]) == sorted(str(f) for f in files)
    assert meta["series_uid"] and meta["modality"] == "CT" and meta["description"] == "AX TEST"
    origin, spacing, direction = vol.geometry.lps
    np.testing.assert_allclose(origin, ORIGIN, atol=1e-6)
    np.testing.assert_allclose(spacing, SPACING_IJK, atol=1e-6)
    np.testing.assert_allclose(direction, np.eye(3), atol=1e-9)


def test_one_file_reads_its_whole_series(tmp_path):
    files = _save(tmp_path, _slices(), nested=True)
    whole = dicom.read_series(tmp_path)
    one = dicom.read_series(files[5])
    np.testing.assert_array_equal(one.data, whole.data)
    assert dicom.series_uid_of(files[5]) == whole.geometry.source_meta["series_uid"]


def test_files_without_preamble_or_suffix(tmp_path):
    files = _save(tmp_path, _slices(), bare=True)
    assert all(dicom.is_dicom_file(f) for f in files)
    assert dicom.holds_dicom(tmp_path)
    np.testing.assert_array_equal(dicom.read_series(tmp_path).data, dicom.read_series(files[0]).data)
    assert dicom.read_series(tmp_path).data[0, 0, 0] == _volume()[0, 0, 0]


def test_is_dicom_file_and_holds_dicom(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    text = tmp_path / "README.txt"
    text.write_text("hello\n")
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\x00" * 300)
    assert not dicom.is_dicom_file(text) and not dicom.is_dicom_file(fake)
    assert not dicom.holds_dicom(tmp_path)
    _save(tmp_path / "deep" / "er", _slices()[:2])
    assert dicom.holds_dicom(tmp_path)


def test_rescale_gives_hounsfield_units(tmp_path):
    hu = _volume(offset=-1024)
    _save(tmp_path, _slices(hu, intercept=-1024))
    vol = dicom.read_series(tmp_path)
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.data, hu.transpose(2, 1, 0))


def test_fractional_slope_gives_float32(tmp_path):
    values = _volume().astype(np.float32) * 0.5 - 10.5
    _save(tmp_path, _slices(values, slope=0.5, intercept=-10.5))
    vol = dicom.read_series(tmp_path)
    assert vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.data, values.transpose(2, 1, 0))


def test_label_series_is_unsigned(tmp_path):
    labels = (_volume() % 4).astype(np.int16)
    _save(tmp_path, _slices(labels))
    vol = dicom.read_series(tmp_path, label=True)
    assert vol.data.dtype == np.uint8
    np.testing.assert_array_equal(vol.data, labels.transpose(2, 1, 0))
    _save(tmp_path / "neg", _slices(_volume(offset=-5)))
    with pytest.raises(LabelValueError):
        dicom.read_series(tmp_path / "neg", label=True)


def test_two_series_need_a_choice(tmp_path):
    ax = _slices(series_uid="1.2.3.4.1", number=3, description="AX T1")
    sag = _slices(_volume(100), (0, 1, 0), (0, 0, -1), series_uid="1.2.3.4.2", number=4, description="SAG T2")
    files = _save(tmp_path, ax, nested=True) + _save(tmp_path, sag, seed=1)
    error = _one_line_error(
        SeriesChoiceError,
        lambda: dicom.read_series(tmp_path),
        "2 DICOM image series",
        "series 3 'AX T1' (CT, 12 slices) 1.2.3.4.1",
        "series 4 'SAG T2' (CT, 12 slices) 1.2.3.4.2",
        "--series",
    )
    assert [s.uid for s in error.series] == ["1.2.3.4.1", "1.2.3.4.2"]
    infos, notes = dicom.find_series(tmp_path)
    assert [len(s.files) for s in infos] == [12, 12] and notes == []
    assert infos[0].describe() == "series 3 'AX T1' (CT, 12 slices) 1.2.3.4.1"
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in infos[0].files]
    assert z == sorted(z)
    axial = dicom.read_series(tmp_path, "1.2.3.4.1")
    sagittal = dicom.read_series(tmp_path, "1.2.3.4.2")
    np.testing.assert_array_equal(axial.data, _volume().transpose(2, 1, 0))
    assert sagittal.data.max() == _volume(100).max()
    np.testing.assert_array_equal(dicom.read_series(files[-1]).data, sagittal.data)  # a file picks its own series
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path, "9.9"), "no DICOM series 9.9", "1.2.3.4.1", "SAG")


def _bad_missing(slices):
    del slices[5]


def _bad_irregular(slices):
    for ds in slices[6:]:
        ds.ImagePositionPatient[2] = DSfloat(float(ds.ImagePositionPatient[2]) + 0.7, auto_format=True)


def _bad_duplicate(slices):
    twin = copy.deepcopy(slices[4])
    twin.SOPInstanceUID = twin.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    slices[4].EchoNumbers, twin.EchoNumbers = 1, 2
    slices.append(twin)


def _bad_tilt(slices):
    for k, ds in enumerate(slices):  # each slice shifted along the column direction: a 15 degree gantry tilt
        ds.ImagePositionPatient[1] = DSfloat(ORIGIN[1] + k * 2.5 * math.tan(math.radians(15)), auto_format=True)
        ds.GantryDetectorTilt = 15


def _bad_orientation(slices):
    slices[2].ImageOrientationPatient = _ds([0, 1, 0, 0, 0, -1])


def _bad_size(slices):
    _set_pixels(slices[7], np.zeros((6, 8), np.int16))


def _bad_pixel_spacing(slices):
    slices[7].PixelSpacing = _ds([0.8, 0.7])


def _bad_single(slices):
    del slices[1:]


def _bad_rgb(slices):
    for ds in slices:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.zeros((ds.Rows, ds.Columns, 3), np.uint8).tobytes()


BAD = {
    "missing slice": (_bad_missing, ["slice gap of 5 mm between", "where the others are 2.5 mm", "1 slice missing?"]),
    "irregular": (_bad_irregular, ["irregular slice spacing", "gap of 3.2 mm", "the others are 2.5 mm"]),
    "duplicate": (_bad_duplicate, ["same position", "echoes", "EchoNumbers"]),
    "tilt": (_bad_tilt, ["gantry tilt", "15.00 degrees", "GantryDetectorTilt 15"]),
    "orientation": (
        _bad_orientation,
        ["several orientations", "(1, 0, 0, 0, 1, 0) in 11 slices", "(0, 1, 0, 0, 0, -1) in 1"],
    ),
    "size": (_bad_size, ["several sizes (rows x columns)", "10 x 8 in 11 slices and 6 x 8 in 1 slice"]),
    "pixel spacing": (_bad_pixel_spacing, ["several pixel spacings", "0.9 x 0.7 in 11 slices and 0.8 x 0.7 in 1"]),
    "single slice": (_bad_single, ["single slice", "2D image, expected a 3D volume"]),
    "rgb": (_bad_rgb, ["colour image", "3 samples per pixel", "RGB"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_series_that_is_not_one_regular_grid_is_refused_in_one_line(tmp_path, case):
    spoil, phrases = BAD[case]
    slices = _slices()
    spoil(slices)
    _save(tmp_path, slices)
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path), "DICOM series 3 'AX TEST' in", *phrases)


def _non_image(sop_class, modality, series_uid):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, ds.SOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = modality, series_uid
    return ds


def test_non_image_objects_and_other_files_are_skipped_with_a_note(tmp_path):
    slices = _slices()
    _save(tmp_path, slices)
    _non_image(BasicTextSRStorage, "SR", slices[0].SeriesInstanceUID).save_as(tmp_path / "report.dcm")
    (tmp_path / "sub").mkdir()
    _non_image(RTStructureSetStorage, "RTSTRUCT", generate_uid()).save_as(
        tmp_path / "sub" / "rs", enforce_file_format=True
    )
    (tmp_path / "README.txt").write_text("scan of a phantom\n")
    infos, notes = dicom.find_series(tmp_path)
    assert len(infos) == 1 and len(infos[0].files) == 12
    assert any("Basic Text SR Storage object (SR), not an image: report.dcm" in n for n in notes), notes
    assert any("RT Structure Set Storage object (RTSTRUCT), not an image: rs" in n for n in notes), notes
    assert any("1 file that are not DICOM: README.txt" in n for n in notes), notes
    vol = dicom.read_series(tmp_path)
    assert vol.issues == notes
    _one_line_error(
        DicomError, lambda: dicom.read_series(tmp_path / "report.dcm"), "Basic Text SR Storage", "not an image"
    )
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path / "README.txt"), "not a DICOM file")


def test_truncated_file_is_named(tmp_path):
    files = _save(tmp_path, _slices())
    files[3].write_bytes(files[3].read_bytes()[:-60])
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path), files[3].name, "truncated or corrupt")
    files[4].write_bytes(files[4].read_bytes()[:400])
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path), files[4].name, "truncated or corrupt")


def _compress(slices, syntax, data_for):
    for ds in slices:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate([data_for(ds)])
        ds["PixelData"].VR = "OB"


def _jpeg_lossless(ds, tmp_path) -> bytes:
    """The slice's pixels JPEG-lossless encoded by GDCM (pydicom here has no JPEG-lossless decoder)."""
    pixels = np.frombuffer(ds.PixelData, np.int16).reshape(ds.Rows, ds.Columns)
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.SetFileName(str(tmp_path / "jpeg.dcm"))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(sitk.GetImageFromArray(pixels[None]))
    encoded = pydicom.dcmread(tmp_path / "jpeg.dcm")
    assert encoded.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    return next(pydicom.encaps.generate_frames(encoded.PixelData, number_of_frames=1))


def test_compressed_slices_pydicom_cannot_decode_are_read_by_gdcm(tmp_path):
    hu = _volume(offset=-1024)
    slices = _slices(hu, intercept=-1024)
    (tmp_path / "work").mkdir()
    _compress(slices, JPEGLosslessSV1, lambda ds: _jpeg_lossless(ds, tmp_path / "work"))
    _save(tmp_path / "series", slices)
    with pytest.raises(RuntimeError, match="missing dependencies"):
        _ = pydicom.dcmread(next((tmp_path / "series").iterdir())).pixel_array
    vol = dicom.read_series(tmp_path / "series")
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.data, hu.transpose(2, 1, 0))


@pytest.mark.parametrize(
    ("syntax", "phrases"),
    [
        (
            JPEGLosslessSV1,
            [
                "JPEG Lossless, Non-Hierarchical",
                "no installed decoder reads",
                "1.2.840.10008.1.2.4.70",
                "pylibjpeg-libjpeg",
            ],
        ),
        (
            JPEG2000Lossless,
            [
                "neither pydicom nor GDCM can decode",
                "JPEG 2000 Image Compression (Lossless Only)",
                "pylibjpeg-openjpeg",
            ],
        ),
    ],
)
def test_undecodable_compressed_pixels_name_the_syntax_and_a_decoder(tmp_path, syntax, phrases):
    slices = _slices()
    _compress(slices, syntax, lambda ds: b"\xff\x4f\xff\x51 garbage, not an image")
    _save(tmp_path, slices)
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path), "pip install", *phrases)


def _enhanced(slices, order) -> Dataset:
    """An Enhanced CT multi-frame dataset holding ``slices`` as frames in ``order``."""
    first = slices[0]
    ds = copy.deepcopy(first)
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "InstanceNumber"):
        delattr(ds, tag)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.NumberOfFrames = len(order)
    shared = Dataset()
    measures, orientation, rescale = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    rescale.RescaleSlope, rescale.RescaleIntercept = first.get("RescaleSlope", 1), first.get("RescaleIntercept", 0)
    rescale.RescaleType = "HU"
    for tag in ("RescaleSlope", "RescaleIntercept"):
        if tag in ds:
            delattr(ds, tag)
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k in order:
        item, position, content = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = slices[k].ImagePositionPatient
        content.StackID, content.InStackPositionNumber = "1", int(k) + 1
        item.PlanePositionSequence, item.FrameContentSequence = [position], [content]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = b"".join(slices[k].PixelData for k in order)
    return ds


def test_enhanced_multiframe_reads_like_its_single_frames(tmp_path):
    hu = _volume(offset=-1024)
    row, col, _ = ORIENTATIONS["oblique"]
    slices = _slices(hu, row, col, intercept=-1024)
    _save(tmp_path / "single", slices)
    order = np.random.default_rng(3).permutation(len(slices))
    (tmp_path / "multi").mkdir()
    _enhanced(slices, order).save_as(tmp_path / "multi" / "enhanced", enforce_file_format=True)
    single = dicom.read_series(tmp_path / "single")
    multi = dicom.read_series(tmp_path / "multi" / "enhanced")
    np.testing.assert_array_equal(multi.data, single.data)
    np.testing.assert_allclose(multi.geometry.canonical_affine_xyz, single.geometry.canonical_affine_xyz, atol=1e-9)
    assert multi.data.dtype == np.int16
    assert [f for _, f in multi.geometry.source_meta["frames"]] == list(np.argsort(order))
    info = dicom.find_series(tmp_path / "multi")[0][0]
    assert info.describe().startswith("series 3 'AX TEST' (CT, 12 frames)")


def test_enhanced_multiframe_without_positions_is_refused(tmp_path):
    ds = _enhanced(_slices(), range(12))
    del ds.PerFrameFunctionalGroupsSequence[4].PlanePositionSequence
    ds.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)
    _one_line_error(DicomError, lambda: dicom.read_series(tmp_path), "enhanced.dcm frame 5 has no ImagePositionPatient")


def _labels(shape_zyx) -> np.ndarray:
    labels = np.zeros(shape_zyx, np.uint8)
    labels[2:5, 1:4, 2:6] = 1
    labels[7, 5:9, 1] = 2
    return labels


def _seg_frames(seg_path, source_meta):
    """The read-back SEG as {(source slice k, segment number): (rows, columns) bool}, and its frame positions."""
    seg = hd.seg.segread(seg_path)
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    uids = list(source_meta["sop_instance_uids"])
    frames, positions = {}, {}
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        k = uids.index(source.ReferencedSOPInstanceUID)
        if "ReferencedFrameNumber" in source:  # multi-frame source: frame numbers are 1-based
            k = [fr for _, fr in source_meta["frames"]].index(int(source.ReferencedFrameNumber) - 1)
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        frames[(k, segment)] = pixels[f].astype(bool)
        positions[k] = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
    return seg, frames, positions


@pytest.mark.parametrize("layout", ["sagittal-single-frames", "oblique-multiframe"])
def test_write_seg_lands_on_the_source_slices(tmp_path, layout):
    row, col, _ = ORIENTATIONS["sagittal" if layout.startswith("sagittal") else "oblique"]
    slices = _slices(_volume(), row, col)
    if layout.endswith("multiframe"):
        (tmp_path / "src").mkdir()
        _enhanced(slices, np.random.default_rng(5).permutation(12)).save_as(tmp_path / "src" / "mf.dcm")
    else:
        _save(tmp_path / "src", slices, nested=True)
    vol = dicom.read_series(tmp_path / "src")
    labels = _labels(vol.data.shape)
    out = dicom.write_seg(tmp_path / "out" / "seg.dcm", labels, vol.geometry, {2: "tumour"})
    seg, frames, positions = _seg_frames(out, vol.geometry.source_meta)
    assert seg.SegmentSequence[0].SegmentLabel == "label 1" and seg.SegmentSequence[1].SegmentLabel == "tumour"
    source = vol.geometry.to_source(labels).transpose(2, 1, 0)  # (k, rows, columns)
    ipp = {str(ds.SOPInstanceUID): [float(v) for v in ds.ImagePositionPatient] for ds in slices}
    for k in range(source.shape[0]):
        for segment in (1, 2):
            want = source[k] == segment
            got = frames.get((k, segment), np.zeros_like(want))
            np.testing.assert_array_equal(got, want, err_msg=f"slice {k} segment {segment}")
        if k in positions:
            origin, _, direction = vol.geometry.lps
            expected = origin + k * vol.geometry.lps[1][2] * direction[:, 2]
            np.testing.assert_allclose(positions[k], expected, atol=1e-4)
            if layout.startswith("sagittal"):
                np.testing.assert_allclose(
                    positions[k], ipp[vol.geometry.source_meta["sop_instance_uids"][k]], atol=1e-4
                )
    assert positions
    assert len(frames) == int((source == 1).any(axis=(1, 2)).sum() + (source == 2).any(axis=(1, 2)).sum())
    assert not list((tmp_path / "out").glob(".seg*"))  # no temporary file left


def test_write_seg_refuses_what_it_cannot_reference(tmp_path):
    nifti_geometry = geometry_from_spacing((12, 10, 8))
    _one_line_error(
        DicomError,
        lambda: dicom.write_seg(tmp_path / "seg.dcm", np.ones((12, 10, 8), np.uint8), nifti_geometry),
        "DICOM SEG needs a DICOM source series",
        "nifti",
    )
    files = _save(tmp_path / "src", _slices())
    vol = dicom.read_series(tmp_path / "src")
    _one_line_error(
        DicomError,
        lambda: dicom.write_seg(tmp_path / "seg.dcm", np.zeros(vol.data.shape, np.uint8), vol.geometry),
        "labels are empty",
    )
    _one_line_error(
        DicomError,
        lambda: dicom.write_seg(tmp_path / "seg.dcm", np.ones((12, 8, 10), np.uint8), vol.geometry),
        "labels of shape (12, 8, 10) do not fit the series' (12, 10, 8) grid",
    )
    files[0].unlink()
    _one_line_error(
        DicomError,
        lambda: dicom.write_seg(tmp_path / "seg.dcm", _labels(vol.data.shape), vol.geometry),
        "1 of the 12 source files of the series are gone",
    )
    assert not (tmp_path / "seg.dcm").exists()


def test_a_written_seg_in_the_series_folder_is_skipped_when_read_again(tmp_path):
    _save(tmp_path, _slices())
    vol = dicom.read_series(tmp_path)
    dicom.write_seg(tmp_path / "labels.dcm", _labels(vol.data.shape), vol.geometry)
    again = dicom.read_series(tmp_path)
    np.testing.assert_array_equal(again.data, vol.data)
    assert any("Segmentation Storage object (SEG), not an image: labels.dcm" in n for n in again.issues)
