"""Broken NIfTI headers: degenerate affines fall back as nibabel and ITK do; impossible files are one line."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from conftest import write_nifti

from napari_volseg.errors import LabelValueError, NiftiReadError, UnsupportedShapeError
from napari_volseg.io import nifti

QFORM = np.diag([2.0, 3.0, 4.0, 1.0])


def _data():
    return np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)


@pytest.mark.parametrize("sform", [np.zeros((4, 4)), np.diag([1.0, 1.0, 0.0, 1.0]), np.full((4, 4), np.nan)])
def test_a_degenerate_sform_falls_back_to_the_qform_and_says_so(tmp_path, sform):
    path = write_nifti(tmp_path / "deg.nii.gz", _data(), sform=sform, qform=QFORM)
    volume = nifti.load(path)
    assert volume.spacing == (4.0, 3.0, 2.0) and volume.data.shape == (6, 5, 4)
    assert volume.issues == ["deg.nii.gz: its sform is degenerate (singular); using its qform"]
    assert nifti.read_geometry(path).spacing_zyx == (4.0, 3.0, 2.0)


def test_without_a_usable_sform_or_qform_the_pixdims_are_used_and_bad_ones_read_as_1mm(tmp_path):
    path = write_nifti(tmp_path / "bare.nii", _data(), sform=np.zeros((4, 4)), pixdim=(1e9, 2.5, np.nan))
    volume = nifti.load(path)
    assert volume.spacing == (1.0, 2.5, 1.0)
    assert volume.issues == [
        "bare.nii: no usable orientation in its header (degenerate sform and qform); "
        "using its pixdims (1e+09, 2.5, nan mm read as 1, 2.5, 1)"
    ]


def test_labels_predicted_on_a_degenerate_image_are_written_with_its_header_and_line_up(tmp_path):
    path = write_nifti(tmp_path / "deg.nii.gz", _data(), sform=np.zeros((4, 4)), qform=QFORM)
    image = nifti.load(path)
    labels = (image.data > 60).astype(np.uint8)
    out = nifti.save_labels(labels, image.geometry, tmp_path / "labels.nii.gz")
    back = nifti.load(out, label=True)
    np.testing.assert_array_equal(back.data, labels)
    assert back.geometry.same_grid(image.geometry)
    assert nib.load(out).header["sform_code"] == 1 and not nib.load(out).header.get_sform()[:3].any()


def test_a_header_declaring_a_huge_volume_is_refused_from_the_header(tmp_path):
    header = nib.Nifti2Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((100_000, 100_000, 100_000))
    path = tmp_path / "huge.nii.gz"
    with gzip.open(path, "wb") as f:  # a header that lies, followed by a few bytes
        f.write(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    assert isinstance(nib.load(path), nib.Nifti2Image)
    for read in (nifti.load, nifti.read_geometry):
        with pytest.raises(UnsupportedShapeError, match=r"declares 100000 x 100000 x 100000 = 1e\+15 voxels"):
            read(path)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (np.zeros((2, 2, 2), np.complex64), NiftiReadError, "holds complex voxels"),
        (np.zeros((0, 3, 3), np.float32), UnsupportedShapeError, "has an empty axis"),
    ],
)
def test_voxels_that_cannot_be_segmented_are_one_line(tmp_path, data, error, message):
    path = write_nifti(tmp_path / "odd.nii", data)
    with pytest.raises(error, match=message):
        nifti.load(path)


def test_label_values_beyond_uint32_are_refused_not_wrapped(tmp_path):
    data = np.zeros((2, 2, 2), np.int64)
    data[0, 0, 0] = 2**33
    path = write_nifti(tmp_path / "big.nii", data)
    with pytest.raises(LabelValueError, match="label values up to 8589934592"):
        nifti.load(path, label=True)


def test_one_voxel_volumes_load(tmp_path):
    path = write_nifti(tmp_path / "one.nii", np.ones((1, 1, 1), np.int16), sform=np.diag([2.0, 2.0, 2.0, 1.0]))
    volume = nifti.load(path)
    assert volume.data.shape == (1, 1, 1) and volume.spacing == (2.0, 2.0, 2.0) and volume.issues == []
