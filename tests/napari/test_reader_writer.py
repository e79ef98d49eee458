"""The npe2 contributions as napari calls them (no window needed)."""

import nibabel as nib
import numpy as np
import pytest

from napari_volseg._napari import reader, sample_data, writer
from napari_volseg.io import decathlon, nifti


def test_reader_claims_nifti_files_and_folders_only(tiny_ct_task, tmp_path):
    image = str(tiny_ct_task / "imagesTr" / "spleen_001.nii.gz")
    assert reader.napari_get_reader(image) is reader.read_volumes
    assert reader.napari_get_reader([image, image.replace("imagesTr", "labelsTr")]) is reader.read_volumes
    assert reader.napari_get_reader(str(tiny_ct_task)) is reader.read_task
    assert reader.napari_get_reader(str(tiny_ct_task / "imagesTr")) is reader.read_task  # inside a task: the task
    (tmp_path / "x.tif").write_bytes(b"II*\x00")
    (tmp_path / "notes.txt").write_text("notes")
    assert reader.napari_get_reader(str(tmp_path / "x.tif")) is None
    assert reader.napari_get_reader(str(tmp_path / "notes.txt")) is None
    # a folder with no task or scans, once napari's dialog hands it to us: one line says so (test_bad_inputs)
    assert reader.napari_get_reader(str(tmp_path)) is reader.read_other_folder
    assert reader.napari_get_reader(str(tmp_path / "missing.nii.gz")) is None


def test_manifest_patterns_and_activation_hook():
    import npe2

    from napari_volseg._napari import preferences

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-volseg")
    [contribution] = manifest.contributions.readers
    assert contribution.filename_patterns[:7] == ["*.nii", "*.nii.gz", "*.nrrd", "*.nhdr", "*.mha", "*.mhd", "*.dcm"]
    assert {"*.dicom", "*.ima", "*.IMA"} <= set(contribution.filename_patterns)  # Siemens and others
    assert contribution.accepts_directories
    [writes] = manifest.contributions.writers
    assert {".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".dcm"} <= set(writes.filename_extensions)
    assert manifest.on_activate == "napari_volseg._napari.preferences:activate"
    assert callable(preferences.activate)
    assert manifest.display_name < "napari builtins"  # preselected in napari's Choose-reader dialog


def test_image_opens_with_spacing_as_scale_and_geometry_in_metadata(tiny_ct_task):
    [(data, kwargs, kind)] = reader.read_volumes(str(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"))
    assert kind == "image" and data.shape == (16, 48, 48)
    np.testing.assert_allclose(kwargs["scale"], (5.0, 2.0, 2.0), rtol=1e-6)
    assert isinstance(kwargs["metadata"]["volseg"]["geometry"], nifti.Geometry)
    assert kwargs["contrast_limits"] == (-160.0, 240.0)  # CT soft-tissue window


def test_label_files_open_as_labels(tiny_ct_task, tmp_path):
    [(data, kwargs, kind)] = reader.read_volumes(str(tiny_ct_task / "labelsTr" / "spleen_002.nii.gz"))
    assert kind == "labels" and data.dtype == np.uint8
    assert kwargs["name"] == "spleen_002 ground truth"  # not a second "spleen_002" beside the image
    arr = np.zeros((5, 5, 5), np.int16)
    arr[1:3, 1:3, 1:3] = 2
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "seg.nii.gz"))
    [(_, _, kind)] = reader.read_volumes(str(tmp_path / "seg.nii.gz"))
    assert kind == "labels"


def test_task_folder_opens_first_case_with_ground_truth(heart_dir):
    layers = reader.read_task(str(heart_dir))
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    (img, ikw, _), (lab, lkw, _) = layers
    assert img.shape == lab.shape and ikw["scale"] == lkw["scale"]
    np.testing.assert_allclose(ikw["scale"], (1.37, 1.25, 1.25), rtol=1e-5)


def test_writer_saves_labels_in_the_source_geometry(heart_dir, tmp_path):
    source = heart_dir / "labelsTr" / "la_005.nii.gz"
    [(data, kwargs, _)] = reader.read_volumes(str(source))
    [out] = writer.write_labels(str(tmp_path / "saved"), data, kwargs)
    assert out.endswith("saved.nii.gz")
    a, b = nib.load(str(source)), nib.load(out)
    np.testing.assert_array_equal(np.asanyarray(b.dataobj), np.asanyarray(a.dataobj).astype(np.uint8))
    np.testing.assert_array_equal(a.affine, b.affine)


def test_writer_without_geometry_uses_scale(tmp_path):
    data = np.zeros((4, 5, 6), np.uint8)
    data[1, 2, 3] = 1
    [out] = writer.write_labels(str(tmp_path / "painted.nii"), data, {"scale": (3.0, 1.0, 0.5)})
    back = nifti.load(out, label=True)
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.spacing, (3.0, 1.0, 0.5))


def test_sample_data_is_the_first_synthetic_ct_case(tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path))
    layers = sample_data.synthetic_ct()
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    task = decathlon.load_task(sample_data.synthetic_task_dir("ct"))
    image, label = task.cases[0].load()
    np.testing.assert_array_equal(layers[0][0], image.data)
    np.testing.assert_array_equal(layers[1][0], label.data)


def test_reader_errors_are_volseg_errors(tmp_path):
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(reader.VolsegError):
        reader.read_volumes(str(tmp_path / "broken.nii.gz"))


@pytest.fixture(scope="module")
def one_scan_four_ways(tiny_ct_task, tmp_path_factory):
    """One case as NIfTI, NRRD and MetaImage (written by ITK from the NIfTI) and as a DICOM series folder."""
    import SimpleITK as sitk
    from series_writer import write_series

    from napari_volseg.io import volumes

    root = tmp_path_factory.mktemp("four")
    source = tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"
    made = {"nifti": source}
    for suffix in (".nrrd", ".mha"):
        made[suffix] = root / f"spleen_002{suffix}"
        sitk.WriteImage(sitk.ReadImage(str(source)), str(made[suffix]))
    made["dicom"] = write_series(root / "spleen_002", volumes.read(source), modality="CT")
    return made


@pytest.mark.parametrize("kind", [".nrrd", ".mha", "dicom"])
def test_every_format_opens_as_exactly_the_niftis_layer(one_scan_four_ways, kind):
    path = one_scan_four_ways[kind]
    assert reader.napari_get_reader(str(path)) is reader.read_volumes
    [(data, kwargs, layer_kind)] = reader.read_volumes(str(path))
    [(ref, ref_kwargs, ref_kind)] = reader.read_volumes(str(one_scan_four_ways["nifti"]))
    assert (layer_kind, kwargs["name"]) == (ref_kind, ref_kwargs["name"]) == ("image", "spleen_002")
    np.testing.assert_array_equal(data, ref)
    np.testing.assert_allclose(kwargs["scale"], ref_kwargs["scale"], atol=1e-5)
    np.testing.assert_allclose(kwargs["translate"], ref_kwargs["translate"], atol=1e-4)
    assert kwargs.get("affine") is None and ref_kwargs.get("affine") is None
    assert kwargs["contrast_limits"] == ref_kwargs["contrast_limits"]


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_saving_a_layer_of_a_nrrd_or_mha_scan_writes_that_format(one_scan_four_ways, tmp_path, suffix):
    import SimpleITK as sitk

    [(data, kwargs, _)] = reader.read_volumes(str(one_scan_four_ways[suffix]))
    labels = (data > 0).astype(np.uint8)
    [out] = writer.write_labels(str(tmp_path / "saved"), labels, kwargs)
    assert out.endswith(f"saved{suffix}")
    written, source = sitk.ReadImage(out), sitk.ReadImage(str(one_scan_four_ways[suffix]))
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source) > 0)


def test_the_reader_works_without_a_qt_binding(tiny_ct_task, monkeypatch):
    """napari used headless (a script, a notebook) in an environment with no Qt binding: the reader still reads."""
    import sys

    for name in ("qtpy", "qtpy.QtCore", "qtpy.QtWidgets"):
        monkeypatch.setitem(sys.modules, name, None)  # `import qtpy...` raises ImportError, as without a binding
    [(data, kwargs, kind)] = reader.read_volumes(str(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"))
    assert kind == "image" and data.shape == (16, 48, 48)
    layers = reader.read_task(str(tiny_ct_task))
    assert [k for _, _, k in layers] == ["image", "labels"]
