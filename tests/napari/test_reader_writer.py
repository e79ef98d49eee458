"""The npe2 contributions as napari calls them (no window needed)."""

import nibabel as nib
import numpy as np
import pytest

from napari_volseg._napari import reader, sample_data, writer
from napari_volseg.io import decathlon, nifti


def test_reader_claims_nifti_files_and_folders_only(tiny_ct_task, tmp_path):
    image = str(tiny_ct_task / "imagesTr" / "spleen_001.nii.gz")
    assert reader.napari_get_reader(image) is reader.read_nifti
    assert reader.napari_get_reader([image, image.replace("imagesTr", "labelsTr")]) is reader.read_nifti
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
    assert contribution.filename_patterns == ["*.nii", "*.nii.gz"] and contribution.accepts_directories
    assert manifest.on_activate == "napari_volseg._napari.preferences:activate"
    assert callable(preferences.activate)
    assert manifest.display_name < "napari builtins"  # preselected in napari's Choose-reader dialog


def test_image_opens_with_spacing_as_scale_and_geometry_in_metadata(tiny_ct_task):
    [(data, kwargs, kind)] = reader.read_nifti(str(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"))
    assert kind == "image" and data.shape == (16, 48, 48)
    np.testing.assert_allclose(kwargs["scale"], (5.0, 2.0, 2.0), rtol=1e-6)
    assert isinstance(kwargs["metadata"]["volseg"]["geometry"], nifti.Geometry)
    assert kwargs["contrast_limits"] == (-160.0, 240.0)  # CT soft-tissue window


def test_label_files_open_as_labels(tiny_ct_task, tmp_path):
    [(data, kwargs, kind)] = reader.read_nifti(str(tiny_ct_task / "labelsTr" / "spleen_002.nii.gz"))
    assert kind == "labels" and data.dtype == np.uint8
    assert kwargs["name"] == "spleen_002 ground truth"  # not a second "spleen_002" beside the image
    arr = np.zeros((5, 5, 5), np.int16)
    arr[1:3, 1:3, 1:3] = 2
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "seg.nii.gz"))
    [(_, _, kind)] = reader.read_nifti(str(tmp_path / "seg.nii.gz"))
    assert kind == "labels"


def test_task_folder_opens_first_case_with_ground_truth(heart_dir):
    layers = reader.read_task(str(heart_dir))
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    (img, ikw, _), (lab, lkw, _) = layers
    assert img.shape == lab.shape and ikw["scale"] == lkw["scale"]
    np.testing.assert_allclose(ikw["scale"], (1.37, 1.25, 1.25), rtol=1e-5)


def test_writer_saves_labels_in_the_source_geometry(heart_dir, tmp_path):
    source = heart_dir / "labelsTr" / "la_005.nii.gz"
    [(data, kwargs, _)] = reader.read_nifti(str(source))
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
        reader.read_nifti(str(tmp_path / "broken.nii.gz"))
