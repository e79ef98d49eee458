import gzip

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

from napari_volseg.errors import LabelValueError, NiftiReadError, OutputError, UnsupportedShapeError
from napari_volseg.io import nifti

SPACING_XYZ = (0.7, 0.9, 2.5)


def _canonical_phantom():
    """An LPS+ (x, y, z) array with a distinct value in every voxel, and its affine."""
    arr = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    aff = np.diag([-SPACING_XYZ[0], -SPACING_XYZ[1], SPACING_XYZ[2], 1.0])
    aff[:3, 3] = (12.0, -30.0, 7.5)
    return arr, aff


def _write_oriented(path, axcodes):
    """Store the canonical phantom in voxel order ``axcodes`` (same world content)."""
    arr, aff = _canonical_phantom()
    xfm = ornt_transform(axcodes2ornt(("L", "P", "S")), axcodes2ornt(axcodes))
    src = nib.orientations.apply_orientation(arr, xfm)
    src_aff = aff @ inv_ornt_aff(xfm, arr.shape)
    nib.save(nib.Nifti1Image(src, src_aff), str(path))
    return src, src_aff


ORIENTATIONS = [
    ("R", "A", "S"),
    ("L", "P", "S"),
    ("L", "A", "S"),
    ("P", "I", "R"),
    ("S", "R", "A"),
    ("A", "L", "I"),
]


@pytest.mark.parametrize("axcodes", ORIENTATIONS, ids=["".join(a) for a in ORIENTATIONS])
def test_any_orientation_loads_to_the_same_canonical_array(tmp_path, axcodes):
    canon_xyz, canon_aff = _canonical_phantom()
    path = tmp_path / f"{''.join(axcodes)}.nii.gz"
    src, src_aff = _write_oriented(path, axcodes)
    vol = nifti.load(path)
    assert vol.data.shape == (7, 6, 5)
    np.testing.assert_array_equal(vol.data, canon_xyz.transpose(2, 1, 0))
    np.testing.assert_allclose(vol.spacing, SPACING_XYZ[::-1], rtol=1e-6)
    # the world position of one voxel agrees however the file stored it
    z, y, x = 4, 2, 3
    value = vol.data[z, y, x]
    ijk = np.argwhere(src == value)[0]
    world_from_file = src_aff @ np.r_[ijk, 1]
    world_canonical = canon_aff @ np.r_[x, y, z, 1]
    np.testing.assert_allclose(world_from_file, world_canonical, atol=1e-9)
    # x runs to the patient's left, y to posterior (RAS world coordinates fall)
    step_x = vol.geometry.canonical_affine_xyz @ [1, 0, 0, 1] - vol.geometry.canonical_affine_xyz @ [
        0,
        0,
        0,
        1,
    ]
    assert step_x[0] < 0


@pytest.mark.parametrize("axcodes", ORIENTATIONS, ids=["".join(a) for a in ORIENTATIONS])
def test_saved_labels_land_in_the_source_voxel_order(tmp_path, axcodes):
    path = tmp_path / "img.nii.gz"
    src, src_aff = _write_oriented(path, axcodes)
    vol = nifti.load(path)
    labels = (vol.data % 3).astype(np.uint8)
    out = nifti.save_labels(labels, vol.geometry, tmp_path / "lab.nii.gz")
    written = nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), src % 3)
    np.testing.assert_array_equal(written.affine, nib.load(str(path)).affine)
    again = nifti.load(out, label=True)
    np.testing.assert_array_equal(again.data, labels)


def test_qform_and_sform_codes_and_affine_survive_the_round_trip(tmp_path):
    arr = np.zeros((8, 9, 10), dtype=np.uint8)
    arr[2:5, 3:7, 4:9] = 1
    qaff = np.array([[0.0, -1.2, 0, 50], [1.1, 0, 0, -20], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    saff = qaff.copy()
    saff[0, 3] = 51.0
    img = nib.Nifti1Image(arr, None)
    img.set_qform(qaff, code=1)
    img.set_sform(saff, code=2)
    src = tmp_path / "codes.nii"
    nib.save(img, str(src))
    vol = nifti.load(src, label=True)
    out = nifti.save_labels(vol.data, vol.geometry, tmp_path / "codes_out.nii")
    a, b = nib.load(str(src)), nib.load(str(out))
    for key in (
        "qform_code",
        "sform_code",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "qoffset_x",
        "pixdim",
        "srow_x",
    ):
        np.testing.assert_array_equal(a.header[key], b.header[key], err_msg=key)
    np.testing.assert_array_equal(a.affine, b.affine)
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))


def _shared_files(folder):
    return sorted((folder / "labelsTr").glob("*.nii.gz")), sorted((folder / "imagesTr").glob("*.nii.gz"))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["heart_dir", "hippocampus_dir"])
def test_round_trip_is_bit_exact_on_every_shared_case(task, request, tmp_path):
    folder = request.getfixturevalue(task)
    labels, images = _shared_files(folder)
    assert labels and len(labels) == len(images)
    for path in labels:
        vol = nifti.load(path, label=True)
        out = nifti.save_labels(vol.data, vol.geometry, tmp_path / path.name)
        back = nifti.load(out, label=True)
        np.testing.assert_array_equal(back.data, vol.data, err_msg=path.name)
        np.testing.assert_array_equal(back.affine, vol.affine, err_msg=path.name)
        src, dst = nib.load(str(path)), nib.load(str(out))
        assert (int(src.header["qform_code"]), int(src.header["sform_code"])) == (
            int(dst.header["qform_code"]),
            int(dst.header["sform_code"]),
        )
        np.testing.assert_array_equal(np.asanyarray(dst.dataobj), np.asanyarray(src.dataobj).astype(np.uint8))
    for path in images[:: max(1, len(images) // 15)]:
        vol = nifti.load(path)
        out = nifti.save_image(vol.data, vol.geometry, tmp_path / ("img_" + path.name))
        back = nifti.load(out)
        np.testing.assert_array_equal(back.data, vol.data, err_msg=path.name)
        np.testing.assert_array_equal(back.affine, vol.affine, err_msg=path.name)


def test_heart_case_geometry(heart_dir):
    vol = nifti.load(heart_dir / "imagesTr" / "la_003.nii.gz")
    assert vol.data.shape[1:] == (256, 256)
    np.testing.assert_allclose(vol.spacing, (1.37, 1.25, 1.25), rtol=1e-5)


def test_nan_and_inf_are_reported_and_replaced(tmp_path):
    arr = np.linspace(0, 1, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    arr[1, 1, 1] = np.nan
    arr[2, 2, 2] = np.inf
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    vol = nifti.load(tmp_path / "nan.nii.gz")
    assert np.isfinite(vol.data).all()
    assert vol.data.min() == 0.0
    assert len(vol.issues) == 1 and "2 NaN/Inf" in vol.issues[0]


def test_four_d_image_loads_as_channels(tmp_path):
    arr = np.zeros((6, 7, 8, 2), dtype=np.float32)
    arr[..., 1] = 1.0
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "mm.nii.gz"))
    vol = nifti.load(tmp_path / "mm.nii.gz")
    assert vol.data.shape == (2, 8, 7, 6) and vol.channels == 2
    assert vol.data[0].max() == 0 and vol.data[1].min() == 1


@pytest.mark.parametrize("shape", [(10, 12), (4, 5, 6, 2, 3)], ids=["2d", "5d"])
def test_2d_and_5d_images_are_refused(tmp_path, shape):
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.float32), np.eye(4)), str(tmp_path / "bad.nii.gz"))
    with pytest.raises(UnsupportedShapeError, match=f"{len(shape)}D"):
        nifti.load(tmp_path / "bad.nii.gz")


def test_not_a_nifti_is_refused(tmp_path):
    (tmp_path / "notes.nii.gz").write_bytes(gzip.compress(b"hello, not an image" * 40))
    (tmp_path / "plain.nii").write_text("not an image at all " * 30)
    (tmp_path / "scan.txt").write_text("x")
    for name in ("notes.nii.gz", "plain.nii", "scan.txt", "missing.nii.gz"):
        with pytest.raises(NiftiReadError) as err:
            nifti.load(tmp_path / name)
        assert "\n" not in str(err.value)


def test_truncated_gz_is_refused(tmp_path):
    arr = np.random.default_rng(0).integers(0, 1000, (40, 40, 40)).astype(np.int16)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "full.nii.gz"))
    blob = (tmp_path / "full.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(NiftiReadError, match="truncated or corrupt"):
        nifti.load(tmp_path / "cut.nii.gz")


def test_label_files_must_hold_whole_numbers(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.float32)
    arr[0, 0, 0] = 0.5
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "frac.nii.gz"))
    with pytest.raises(LabelValueError, match="non-integer"):
        nifti.load(tmp_path / "frac.nii.gz", label=True)
    arr[0, 0, 0] = 2.0
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "float_labels.nii.gz"))
    vol = nifti.load(tmp_path / "float_labels.nii.gz", label=True)
    assert vol.data.dtype == np.uint8 and vol.data.max() == 2


@pytest.mark.parametrize("name", ["scan with spaces.nii.gz", "ÿnïcødé_ßcan.nii", "日本語.nii.gz"])
def test_non_ascii_and_spaced_paths(tmp_path, name):
    folder = tmp_path / "a folder" / "dössier"
    folder.mkdir(parents=True)
    arr = np.arange(27, dtype=np.uint8).reshape(3, 3, 3) % 2
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(folder / name))
    vol = nifti.load(folder / name, label=True)
    out = nifti.save_labels(vol.data, vol.geometry, folder / ("out " + name))
    np.testing.assert_array_equal(nifti.load(out, label=True).data, vol.data)


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    geom = nifti.geometry_from_spacing((3, 4, 5), (2.0, 1.0, 1.0))
    target = tmp_path / "labels.nii.gz"
    nifti.save_labels(np.ones((3, 4, 5), np.uint8), geom, target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OutputError, match="cannot write .*labels.nii.gz: disk full"):  # one line, not a traceback
        nifti.save_labels(np.zeros((3, 4, 5), np.uint8), geom, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["labels.nii.gz"]


def test_geometry_from_spacing_round_trips(tmp_path):
    geom = nifti.geometry_from_spacing((3, 4, 5), (2.5, 1.0, 0.5), (10.0, -4.0, 3.0))
    assert geom.shape_zyx == (3, 4, 5)
    np.testing.assert_allclose(geom.spacing_zyx, (2.5, 1.0, 0.5))
    np.testing.assert_allclose(geom.origin_zyx, (10.0, -4.0, 3.0))
    labels = np.zeros((3, 4, 5), np.uint8)
    labels[1, 2, 3] = 7
    out = nifti.save_labels(labels, geom, tmp_path / "g.nii.gz")
    back = nifti.load(out, label=True)
    np.testing.assert_array_equal(back.data, labels)
    np.testing.assert_allclose(back.spacing, (2.5, 1.0, 0.5))
