"""The front door: one scan as NIfTI, NRRD, MetaImage and a DICOM series opens as the same canonical volume, labels
go back in each source's own format and world geometry, and names and refusals are the same for every format."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from series_writer import write_series

from napari_volseg.errors import VolsegError
from napari_volseg.io import volumes
from napari_volseg.io.geometry import geometry_from_spacing

SITK_SUFFIXES = (".nrrd", ".mha", ".mhd")


@pytest.fixture(scope="module")
def scan_as_every_format(tiny_ct_task, tmp_path_factory):
    """A synthetic CT case (stored RAS: every axis flipped against the canonical LPS) as NIfTI, as NRRD and
    MetaImage written by ITK's own NIfTI reader and writers, and as a DICOM series written slice by slice."""
    root = tmp_path_factory.mktemp("formats")
    nifti_path = tiny_ct_task / "imagesTr" / "spleen_001.nii.gz"
    image = sitk.ReadImage(str(nifti_path))
    paths = {"nifti": nifti_path}
    for suffix in SITK_SUFFIXES:
        paths[suffix] = root / f"spleen_001{suffix}"
        sitk.WriteImage(image, str(paths[suffix]))
    paths["dicom"] = write_series(root / "spleen_001", volumes.read(nifti_path), modality="CT")
    return paths


@pytest.mark.parametrize("kind", [*SITK_SUFFIXES, "dicom"])
def test_every_format_opens_as_the_same_volume(scan_as_every_format, kind):
    reference = volumes.read(scan_as_every_format["nifti"])
    volume = volumes.read(scan_as_every_format[kind])
    np.testing.assert_array_equal(volume.data, reference.data)
    assert volume.spacing == pytest.approx(reference.spacing, abs=1e-5)
    assert volume.geometry.origin_zyx == pytest.approx(reference.geometry.origin_zyx, abs=1e-4)
    np.testing.assert_allclose(volume.geometry.canonical_affine_xyz, reference.geometry.canonical_affine_xyz, atol=1e-4)
    assert volume.geometry.same_world_grid(reference.geometry, tol_mm=1e-4)


@pytest.mark.parametrize("kind", ["nifti", *SITK_SUFFIXES])
def test_labels_go_back_in_the_sources_format_and_world_geometry(scan_as_every_format, tmp_path, kind):
    source = scan_as_every_format[kind]
    volume = volumes.read(source)
    labels = (volume.data > 0).astype(np.uint8)
    name = volumes.labels_name(source)
    assert name == "spleen_001" + {"nifti": ".nii.gz"}.get(kind, kind)
    out = volumes.write_labels(tmp_path / name, labels, volume.geometry)
    written, original = sitk.ReadImage(str(out)), sitk.ReadImage(str(source))
    assert written.GetSize() == original.GetSize()
    np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(original) > 0)
    np.testing.assert_array_equal(volumes.read(out, label=True).data, labels)


def test_a_dicom_series_labels_are_nifti_by_default_and_dicom_seg_on_request(scan_as_every_format, tmp_path):
    import highdicom

    series = scan_as_every_format["dicom"]
    volume = volumes.read(series)
    assert volumes.labels_name(series) == "spleen_001.nii.gz"
    assert volumes.labels_name(series, "dicom-seg") == "spleen_001.dcm"
    labels = (volume.data > 0).astype(np.uint8)
    nii = volumes.write_labels(tmp_path / "spleen_001.nii.gz", labels, volume.geometry)
    back = volumes.read(nii, label=True)
    assert back.geometry.same_world_grid(volume.geometry, tol_mm=1e-4)
    np.testing.assert_array_equal(back.data, labels)
    seg = highdicom.seg.segread(volumes.write_labels(tmp_path / "spleen_001.dcm", labels, volume.geometry))
    assert seg.Modality == "SEG" and seg.number_of_segments == 1


def test_names_and_formats():
    assert volumes.case_id("a/la_003.nii.gz") == "la_003"
    assert volumes.case_id("a/heart.seg.nrrd") == "heart"
    assert volumes.case_id("a/x.MHA") == "x"
    assert volumes.labels_name("scans/case_0000.nii.gz") == "case.nii.gz"
    assert volumes.labels_name("scans/c.nii") == "c.nii.gz"  # predictions were always .nii.gz
    assert volumes.labels_name("scans/c.nhdr") == "c.nrrd"
    assert volumes.labels_name("scans/c.nrrd", "seg.nrrd") == "c.seg.nrrd"
    assert volumes.labels_name("scans/c.mha", "nifti") == "c.nii.gz"
    with pytest.raises(VolsegError, match="unknown label format"):
        volumes.labels_name("c.nii.gz", "png")
    assert [volumes.format_of(n) for n in ("a.nii", "a.NRRD", "a.nhdr", "a.mhd", "a.seg.nrrd", "a.dcm", "a.png")] == [
        "nifti",
        "nrrd",
        "nrrd",
        "metaimage",
        "nrrd",
        "dicom",
        None,
    ]


def test_what_is_not_a_volume_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "notes.txt", tmp_path / "empty", tmp_path / "missing.nrrd", tmp_path / "gone"):
        with pytest.raises(VolsegError) as err:
            volumes.read(path)
        assert "\n" not in str(err.value)
    like = geometry_from_spacing((2, 3, 4))
    with pytest.raises(VolsegError, match="end the name"):
        volumes.write_labels(tmp_path / "labels.png", np.zeros((2, 3, 4), np.uint8), like)
    with pytest.raises(VolsegError, match="DICOM"):
        volumes.write_labels(tmp_path / "labels.dcm", np.zeros((2, 3, 4), np.uint8), like)


def test_only_the_front_door_reads_or_writes_volume_files():
    """No module outside io/ (volumes and its backends) imports a format library or a backend."""
    import ast
    from pathlib import Path

    import napari_volseg

    root = Path(napari_volseg.__file__).parent
    door = {"io/volumes.py", "io/nifti.py", "io/itk_formats.py", "io/geometry.py"}  # and every module of io/dicom/
    banned = {"nibabel", "SimpleITK", "pydicom", "highdicom", "nrrd"}
    backends = {"napari_volseg.io.nifti", "napari_volseg.io.itk_formats", "napari_volseg.io.dicom"}
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel in door or rel.startswith("io/dicom/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(
                n.split(".")[0] in banned or n in backends or n.startswith("napari_volseg.io.dicom.") for n in names
            ):
                offenders.append(rel)
    assert offenders == []


def test_many_slices_of_one_series_are_one_scan_and_folders_have_names(scan_as_every_format, monkeypatch):
    series = scan_as_every_format["dicom"]
    slices = sorted(series.iterdir())
    assert volumes.distinct_scans([*slices, scan_as_every_format[".nrrd"]]) == [
        slices[0],
        scan_as_every_format[".nrrd"],
    ]
    monkeypatch.chdir(series)
    assert volumes.case_id(".") == "spleen_001"  # `volseg predict .` inside the series folder: not '.nii.gz'
    assert volumes.case_id("x" * 300 + ".txt") == "x" * 300 + ".txt"  # a name the file system refuses: no OSError


def test_a_slicer_segmentation_beside_its_scan_is_not_a_second_scan(scan_as_every_format, tmp_path):
    from napari_volseg.io.inputs import collect_inputs

    folder = tmp_path / "slicer"
    folder.mkdir()
    scan = folder / "spleen_001.nrrd"
    scan.write_bytes(scan_as_every_format[".nrrd"].read_bytes())
    volume = volumes.read(scan)
    volumes.write_labels(folder / "spleen_001.seg.nrrd", (volume.data > 0).astype(np.uint8), volume.geometry)
    assert collect_inputs([folder]) == [scan]
