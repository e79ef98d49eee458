"""Fuzzed NIfTI files: odd affines, pixdims (0, negative, NaN, huge), dtypes, NaN/Inf voxels, tiny, empty,
truncated and huge declared shapes. Each loads into a sound Volume or is one VolsegError line; a
header declaring more voxels than the file holds is refused before memory for them is allocated."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from conftest import one_line_volseg_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_volseg.io import nifti

# NIfTI datatype codes: every integer and float type, complex, float128, RGB24/RGBA32, and two invalid codes
DATATYPES = [2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64, 32, 1792, 2048, 1536, 128, 2304, 0, 999]
ODD = [0.0, 1.0, -1.0, 2.5, 1e-30, 1e30, np.nan, np.inf, -np.inf]
MATRICES = {
    "scaled": np.diag([0.8, 0.8, 5.0, 1.0]),
    "rotated": np.array([[0, -2.0, 0, 10], [1.5, 0, 0, -3], [0, 0, 4.0, 1], [0, 0, 0, 1]]),
    "zero": np.zeros((4, 4)),
    "singular": np.array([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    "nan": np.full((4, 4), np.nan),
    "huge": np.diag([1e30, 1e30, 1e30, 1.0]),
    "tiny": np.diag([1e-30, 1e-30, 1e-30, 1.0]),
}


@st.composite
def nifti_files(draw):
    """``(bytes of a .nii, gzip it?)`` with a header as a user's broken file might have it."""
    huge = draw(st.integers(0, 9)) == 0
    header = (nib.Nifti2Header if huge or draw(st.booleans()) else nib.Nifti1Header)()
    if huge:
        shape = tuple(draw(st.lists(st.integers(1, 10**5), min_size=3, max_size=4)))
    elif draw(st.integers(0, 3)):  # mostly 3D volumes, sometimes any number of axes (0 to 5 voxels each)
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=3, max_size=3)))
    else:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=5)))
    header.set_data_shape(shape)
    real = st.sampled_from(DATATYPES[:10])
    header["datatype"] = draw(st.one_of(real, real, st.sampled_from(DATATYPES)))
    header["vox_offset"] = len(header.binaryblock) + 4
    header["pixdim"][0] = draw(st.sampled_from([1.0, -1.0, 0.0, np.nan]))
    header["pixdim"][1:4] = draw(st.lists(st.sampled_from(ODD), min_size=3, max_size=3))
    header["qform_code"], header["sform_code"] = draw(
        st.lists(st.sampled_from([0, 1, 2, 4, 7]), min_size=2, max_size=2)
    )
    for key in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x"):
        header[key] = draw(st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0, np.nan]))
    matrix = MATRICES[draw(st.sampled_from(sorted(MATRICES)))]
    header["srow_x"], header["srow_y"], header["srow_z"] = matrix[:3]
    header["scl_slope"], header["scl_inter"] = draw(st.sampled_from([(0.0, 0.0), (1.0, 0.0), (2.0, -5.0), (np.nan, 0)]))
    try:
        dtype = header.get_data_dtype()
    except (KeyError, nib.spatialimages.HeaderDataError):
        dtype = None  # an invalid code: the file gets a few bytes of junk
    count = int(np.prod(shape)) if not huge else 0
    if dtype is not None and dtype.fields is None and dtype.kind != "V" and count:
        data = draw(arrays(dtype, count)).tobytes()
    else:
        data = draw(st.binary(max_size=64))
    keep = draw(st.sampled_from([None] * 6 + [0, len(data) // 2]))  # sometimes truncated
    blob = header.binaryblock + b"\0" * 4 + data[:keep]
    return blob, draw(st.booleans())


def _check_volume(volume: nifti.Volume, label: bool) -> None:
    assert volume.data.ndim in (3, 4) and volume.data.size >= 1
    assert volume.data.shape[-3:] == volume.geometry.shape_zyx
    assert all(np.isfinite(s) and s > 0 for s in volume.spacing)
    assert np.isfinite(volume.affine).all()
    if label:
        assert volume.data.dtype.kind == "u"
    elif volume.data.dtype.kind == "f":
        assert np.isfinite(volume.data).all()
    assert all("\n" not in issue for issue in volume.issues)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=nifti_files())
def test_fuzzed_nifti_files_load_soundly_or_fail_with_one_line(tmp_path, file):
    blob, compress = file
    path = tmp_path / ("fuzz.nii.gz" if compress else "fuzz.nii")
    path.write_bytes(gzip.compress(blob, compresslevel=1) if compress else blob)
    one_line_volseg_error(lambda: nifti.read_geometry(path))
    for label in (False, True):
        volume = one_line_volseg_error(lambda: nifti.load(path, label=label))  # noqa: B023 - called at once
        if volume is None:
            continue
        _check_volume(volume, label)
        if volume.data.ndim == 3:  # labels computed on it go back into the file's own grid
            out = nifti.save_labels(np.zeros(volume.data.shape, np.uint8), volume.geometry, tmp_path / "out.nii.gz")
            assert nifti.load(out, label=True).data.shape == volume.data.shape


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=arrays(st.sampled_from(["bool", "float16", "int64", "uint32", "complex64"]), (2, 3, 4)))
def test_fuzzed_arrays_of_any_dtype_save_or_fail_with_one_line(tmp_path, data):
    geometry = nifti.geometry_from_spacing((2, 3, 4), (2.0, 1.0, 1.0))
    saved = one_line_volseg_error(lambda: nifti.save_image(data, geometry, tmp_path / "image.nii.gz"))
    if saved is not None:
        back = nifti.load(saved)
        assert back.data.shape == (2, 3, 4)
    one_line_volseg_error(lambda: nifti.save_labels(data, geometry, tmp_path / "labels.nii.gz"))


def test_the_fuzzer_reaches_both_outcomes(tmp_path):
    """Guards the strategy itself: sound files load, broken ones are refused."""
    good = nib.Nifti1Image(np.ones((2, 3, 4), np.float32), np.diag([2.0, 1.0, 1.0, 1.0]))
    nib.save(good, str(tmp_path / "good.nii"))
    assert nifti.load(tmp_path / "good.nii").spacing == (1.0, 1.0, 2.0)
    (tmp_path / "cut.nii").write_bytes((tmp_path / "good.nii").read_bytes()[:360])
    with pytest.raises(nifti.NiftiReadError, match="truncated"):
        nifti.load(tmp_path / "cut.nii")
