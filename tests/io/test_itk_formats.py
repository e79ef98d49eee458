"""NRRD and MetaImage through the front door, against files written by independent writers (pynrrd, a hand-written
MetaImage header) and against nibabel's reading of a NIfTI of the same scan."""

from __future__ import annotations

import gzip

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from napari_volseg.errors import UnsupportedShapeError, VolsegError
from napari_volseg.io import itk_formats, nifti
from napari_volseg.io.geometry import LPS_FROM_RAS

SHAPE_IJK = (7, 6, 5)

# Axis directions (rows: the LPS+ world vector of one step along i, j, k) and origins (LPS+ mm).
ORIENTATIONS = {
    "axial-lps": (np.diag([0.8, 0.9, 2.5]), (10.0, -20.0, 30.0)),
    "axial-ras": (np.diag([-0.8, -0.9, 2.5]), (10.0, -20.0, 30.0)),
    "sagittal": (np.array([[0.0, 0.9, 0.0], [0.0, 0.0, -0.8], [2.5, 0.0, 0.0]]), (-5.0, 3.0, 40.0)),
    "coronal-flipped": (np.array([[-0.8, 0.0, 0.0], [0.0, 0.0, -0.9], [0.0, -2.5, 0.0]]), (1.0, 2.0, 3.0)),
    "oblique": (
        np.array(
            [[0.8 * np.cos(0.3), 0.8 * np.sin(0.3), 0.0], [-0.9 * np.sin(0.3), 0.9 * np.cos(0.3), 0.0], [0, 0, 2.5]]
        ),
        (0.0, 0.0, 0.0),
    ),
}


def _voxels() -> np.ndarray:
    return np.arange(np.prod(SHAPE_IJK), dtype=np.int16).reshape(SHAPE_IJK) - 50


def _nifti_twin(tmp_path, data_ijk, rows_lps, origin_lps):
    """The same scan as a NIfTI written by nibabel: voxel (i, j, k) at the same world position."""
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ np.asarray(rows_lps).T
    affine[:3, 3] = LPS_FROM_RAS @ np.asarray(origin_lps)
    path = tmp_path / "twin.nii.gz"
    nib.save(nib.Nifti1Image(data_ijk, affine), str(path))
    return nifti.load(path)


def _same_layer(volume, twin):
    np.testing.assert_array_equal(volume.data, twin.data)
    np.testing.assert_allclose(volume.geometry.canonical_affine_xyz, twin.geometry.canonical_affine_xyz, atol=1e-4)
    assert volume.spacing == pytest.approx(twin.spacing)
    assert volume.geometry.origin_zyx == pytest.approx(twin.geometry.origin_zyx, abs=1e-4)


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_nrrd_by_pynrrd_opens_as_its_nifti(tmp_path, orientation):
    rows, origin = ORIENTATIONS[orientation]
    data = _voxels()
    space, rows_h, origin_h = "left-posterior-superior", rows, origin
    if orientation == "axial-ras":  # the same geometry declared in RAS: ITK turns it to LPS
        space, rows_h, origin_h = "right-anterior-superior", rows @ LPS_FROM_RAS, LPS_FROM_RAS @ np.asarray(origin)
    header = {"space": space, "space directions": rows_h, "space origin": np.asarray(origin_h), "encoding": "gzip"}
    path = tmp_path / "scan.nrrd"
    nrrd.write(str(path), data, header)
    volume = itk_formats.load(path)
    assert volume.geometry.source_format == "nrrd"
    _same_layer(volume, _nifti_twin(tmp_path, data, rows, origin))


def _metaimage(path, data_ijk, rows_lps, origin_lps, detached=False):
    spacing = np.sqrt((np.asarray(rows_lps) ** 2).sum(axis=1))
    matrix = (np.asarray(rows_lps) / spacing[:, None]).ravel()
    raw = np.asfortranarray(data_ijk).tobytes(order="F")
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        "TransformMatrix = " + " ".join(f"{v:.10g}" for v in matrix),
        "Offset = " + " ".join(f"{v:.10g}" for v in origin_lps),
        "ElementSpacing = " + " ".join(f"{v:.10g}" for v in spacing),
        "DimSize = " + " ".join(str(n) for n in data_ijk.shape),
        "ElementType = MET_SHORT",
    ]
    if detached:
        (path.parent / (path.stem + ".raw")).write_bytes(raw)
        path.write_text("\n".join([*lines, f"ElementDataFile = {path.stem}.raw"]) + "\n")
    else:
        path.write_bytes(("\n".join([*lines, "ElementDataFile = LOCAL"]) + "\n").encode() + raw)


@pytest.mark.parametrize("orientation", ["axial-lps", "sagittal", "oblique"])
@pytest.mark.parametrize("suffix", [".mha", ".mhd"])
def test_metaimage_by_hand_opens_as_its_nifti(tmp_path, orientation, suffix):
    rows, origin = ORIENTATIONS[orientation]
    data = _voxels()
    path = tmp_path / f"scan{suffix}"
    _metaimage(path, data, rows, origin, detached=suffix == ".mhd")
    volume = itk_formats.load(path)
    assert volume.geometry.source_format == "metaimage"
    _same_layer(volume, _nifti_twin(tmp_path, data, rows, origin))


@pytest.mark.parametrize("suffix", [".nrrd", ".seg.nrrd", ".mha", ".mhd"])
def test_labels_written_back_in_the_source_grid(tmp_path, suffix):
    rows, origin = ORIENTATIONS["sagittal"]
    data = _voxels()
    src = tmp_path / "scan.mha"
    _metaimage(src, data, rows, origin)
    volume = itk_formats.load(src)
    labels = (volume.data > 20).astype(np.uint8) + (volume.data > 100)
    out = itk_formats.save_labels(labels, volume.geometry, tmp_path / f"out{suffix}", {1: "myocardium"})
    written = sitk.ReadImage(str(out))
    source = sitk.ReadImage(str(src))
    assert written.GetSize() == source.GetSize()
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    expected = sitk.GetArrayFromImage(source) > 20
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written) >= 1, expected)  # the source's own voxel order
    back = itk_formats.load(out, label=True)
    np.testing.assert_array_equal(back.data, labels)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
    if suffix == ".seg.nrrd":
        _, header = nrrd.read(str(out))
        assert header["Segment0_Name"] == "myocardium" and header["Segment0_LabelValue"] == "1"
        assert header["Segment1_Name"] == "label 2" and header["Segment1_LabelValue"] == "2"
        assert itk_formats.read_geometry(out).source_meta["segments"] == {1: "myocardium", 2: "label 2"}


def test_a_ras_nrrd_keeps_its_world_geometry(tmp_path):
    rows, origin = ORIENTATIONS["axial-lps"]
    path = tmp_path / "ras.nrrd"
    header = {
        "space": "right-anterior-superior",
        "space directions": rows @ LPS_FROM_RAS,
        "space origin": LPS_FROM_RAS @ np.asarray(origin),
    }
    nrrd.write(str(path), _voxels(), header)
    volume = itk_formats.load(path)
    out = itk_formats.save_labels(np.ones(volume.data.shape, np.uint8), volume.geometry, tmp_path / "lab.nrrd")
    data, written = nrrd.read(str(out))
    assert data.shape == SHAPE_IJK
    assert written["space"] == "left-posterior-superior"
    np.testing.assert_allclose(written["space directions"], rows, atol=1e-6)
    np.testing.assert_allclose(written["space origin"], origin, atol=1e-6)


def test_bad_files_are_one_line(tmp_path):
    truncated = tmp_path / "cut.nrrd"
    nrrd.write(str(truncated), _voxels(), {"encoding": "raw"})
    truncated.write_bytes(truncated.read_bytes()[:-100])
    text = tmp_path / "text.mha"
    text.write_text("hello\n")
    two_d = tmp_path / "flat.nrrd"
    nrrd.write(str(two_d), np.zeros((4, 5), np.int16))
    gz = tmp_path / "bad.nrrd"
    nrrd.write(str(gz), _voxels(), {"encoding": "gzip"})
    gz.write_bytes(gzip.compress(b"x")[:5] + gz.read_bytes()[-40:])
    for path in (truncated, text, gz, tmp_path / "missing.mha", tmp_path):
        with pytest.raises(VolsegError) as err:
            itk_formats.load(path)
        assert "\n" not in str(err.value) and path.name in str(err.value)
    with pytest.raises(VolsegError, match="cut.nrrd is truncated or corrupt: its voxels cannot be read"):
        itk_formats.load(truncated)
    with pytest.raises(UnsupportedShapeError, match="2D"):
        itk_formats.load(two_d)


def test_several_values_per_voxel_are_channels_not_labels(tmp_path):
    path = tmp_path / "vec.nrrd"
    nrrd.write(str(path), np.stack([_voxels(), -_voxels()]), {"kinds": ["vector", "domain", "domain", "domain"]})
    volume = itk_formats.load(path)
    assert volume.channels == 2 and volume.data.shape[1:] == tuple(reversed(SHAPE_IJK))
    np.testing.assert_array_equal(volume.data[0], -volume.data[1])
    with pytest.raises(UnsupportedShapeError, match="labelmap"):
        itk_formats.load(path, label=True)
