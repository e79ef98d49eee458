"""The plugin inside a real napari viewer (needs OpenGL: run under xvfb-run, as scripts/test.sh does)."""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


def test_drag_and_drop_nifti_through_npe2(make_napari_viewer, tiny_ct_task):
    viewer = make_napari_viewer()
    viewer.open(str(tiny_ct_task / "imagesTr" / "spleen_003.nii.gz"), plugin="napari-volseg")
    viewer.open(str(tiny_ct_task / "labelsTr" / "spleen_003.nii.gz"), plugin="napari-volseg")
    image, labels = viewer.layers
    assert image.__class__.__name__ == "Image" and labels.__class__.__name__ == "Labels"
    np.testing.assert_allclose(image.scale, (5.0, 2.0, 2.0), rtol=1e-6)
    np.testing.assert_allclose(labels.scale, image.scale)
    np.testing.assert_allclose(labels.translate, image.translate)


def test_task_folder_and_sample_data_open(make_napari_viewer, tiny_ct_task, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path))
    viewer = make_napari_viewer()
    viewer.open(str(tiny_ct_task), plugin="napari-volseg")
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]
    viewer.open_sample("napari-volseg", "synthetic-ct")
    assert len(viewer.layers) == 4


def test_save_labels_layer_through_the_writer(make_napari_viewer, tiny_ct_task, tmp_path):
    from napari_volseg.io import nifti

    viewer = make_napari_viewer()
    source = tiny_ct_task / "labelsTr" / "spleen_004.nii.gz"
    viewer.open(str(source), plugin="napari-volseg")
    out = tmp_path / "edited.nii.gz"
    viewer.layers[0].save(str(out), plugin="napari-volseg")
    np.testing.assert_array_equal(nifti.load(out, label=True).data, nifti.load(source, label=True).data)
