"""The model chooser in the Predict and Train widgets: pretrained, pulled and imported models predict in napari."""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CT

from napari_volseg._napari import loading

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "zoo"))
from fakes import write_bundle, write_checkpoint  # noqa: E402
from served import serve  # noqa: E402

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


def ship_a_model(tmp_path, monkeypatch) -> None:
    """An empty user cache, and a shipped model 'organ-pretrained' in place of the package's own."""
    from napari_volseg.zoo import registry

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    write_checkpoint(shipped / "organ-pretrained.safetensors")
    monkeypatch.setattr(registry, "PRETRAINED_DIR", shipped)


@pytest.fixture
def viewer_widgets(make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task):
    """A viewer with the tiny CT task open, a shipped model 'organ-pretrained', an empty user cache."""
    ship_a_model(tmp_path, monkeypatch)
    from napari_volseg._napari.widgets import DataWidget, PredictWidget, TrainWidget

    viewer = make_napari_viewer()
    data, predict, train = DataWidget(viewer), PredictWidget(viewer), TrainWidget(viewer)
    data.open_task(tiny_ct_task)  # read in a worker
    qtbot.waitUntil(lambda: data.session.task is not None and not data.session.busy_loading(), timeout=60_000)
    return viewer, predict, train


def predict_current(predict, qtbot):
    predict.predict("current case")
    # the worker ends before the result's layers are in (one per event-loop turn, counted by busy_loading)
    qtbot.waitUntil(lambda: predict.worker is None and not predict.session.busy_loading(), timeout=120_000)
    case = predict.session.case_id or predict.session.task.cases[0].id
    return predict.viewer.layers[f"{case} prediction"]


def test_a_pretrained_model_chosen_by_name_predicts_and_both_widgets_follow(viewer_widgets, qtbot):
    viewer, predict, train = viewer_widgets
    items = [predict.chooser.combo.itemText(i) for i in range(predict.chooser.combo.count())]
    assert items[0] == "no model" and "organ-pretrained (pretrained)" in items and items[-1] == "Load model…"
    assert predict.chooser.select("organ-pretrained")
    assert predict.session.checkpoint.name == "organ-pretrained.safetensors"
    assert train.chooser.combo.currentText() == "organ-pretrained (pretrained)"  # one session, both choosers
    layer = predict_current(predict, qtbot)
    assert layer.data.shape == TINY_CT.shape


def test_a_monai_bundle_loaded_from_its_inference_json_predicts_inside_napari(viewer_widgets, qtbot, tmp_path):
    viewer, predict, _ = viewer_widgets
    bundle = write_bundle(tmp_path / "spleen_ct_segmentation")
    worker = predict.chooser.load(bundle / "configs" / "inference.json")
    qtbot.waitUntil(lambda: predict.chooser.worker is None, timeout=60_000)
    assert worker is not None
    assert predict.session.checkpoint == tmp_path / "cache" / "models" / "spleen_ct_segmentation.safetensors"
    assert predict.chooser.combo.currentText() == "spleen_ct_segmentation (installed)"
    assert not predict.tta.isEnabled()  # a bundle was not trained mirrored here
    layer = predict_current(predict, qtbot)
    assert layer.data.shape == TINY_CT.shape and 0 < layer.data.mean() < 1


def test_pull_from_the_chooser_installs_and_selects_the_model(viewer_widgets, qtbot, tmp_path, monkeypatch):
    from napari_volseg.zoo import registry

    _, predict, _ = viewer_widgets
    with serve(tmp_path / "served") as server:
        blob = write_checkpoint(tmp_path / "served" / "liver.safetensors").read_bytes()
        index = tmp_path / "index.json"
        entry = {"name": "liver", "url": f"{server.url}/liver.safetensors", "sha256": hashlib.sha256(blob).hexdigest()}
        index.write_text(json.dumps({"models": [entry]}))
        monkeypatch.setattr(registry, "SHIPPED_INDEX", index)
        predict.chooser.refresh()
        predict.chooser.combo.setCurrentText("liver (not installed)")
        assert predict.chooser.pull_button.isEnabled()
        predict.chooser.pull_selected()
        qtbot.waitUntil(lambda: predict.chooser.worker is None, timeout=60_000)
    assert predict.session.checkpoint == tmp_path / "cache" / "models" / "liver.safetensors"
    assert predict.chooser.combo.currentText() == "liver (installed)" and not predict.chooser.pull_button.isEnabled()


def test_a_dropped_scan_without_a_task_predicts_with_a_pretrained_model(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task
):
    """Issue 13's first contact: drop a scan (and its label) onto napari, choose the pretrained model, Predict."""
    from napari_volseg._napari.widgets import PredictWidget
    from napari_volseg.io import nifti

    ship_a_model(tmp_path, monkeypatch)
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    image = tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"
    loading.open_files(predict.session, [image, tiny_ct_task / "labelsTr" / "spleen_002.nii.gz"])  # what a drop does
    qtbot.waitUntil(lambda: "spleen_002 ground truth" in viewer.layers and not predict.session.busy_loading())
    assert predict.session.task is None
    assert predict.chooser.select("organ-pretrained")
    assert predict.predict("current case") is not None
    # the worker ends before the result's layers are in: they are added one per event-loop turn
    qtbot.waitUntil(lambda: predict.worker is None and "spleen_002 errors" in viewer.layers, timeout=120_000)
    layer = viewer.layers["spleen_002 prediction"]
    assert layer.data.shape == nifti.load(image).data.shape
    assert tuple(layer.scale) == tuple(viewer.layers["spleen_002"].scale)
    assert predict.status.text().startswith("spleen_002: predicted; Dice against 'spleen_002 ground truth' ")
    # the dropped scan's result is in the table, exported and saved like a task's cases
    assert predict.table.rowCount() == 1 and predict.table.item(0, 0).text() == "spleen_002"
    assert predict.mean_label.text().startswith("mean Dice over 1 case(s)")
    csv = predict.export_csv(tmp_path / "dice.csv")
    assert csv is not None and csv.read_text().count("spleen_002") == 1
    assert csv.read_text().splitlines()[1].endswith("organ-pretrained.safetensors,")  # trained on it? nobody can say
    [saved] = predict.save_predictions(tmp_path / "preds")
    np.testing.assert_array_equal(nifti.load(saved, label=True).data, np.asarray(layer.data))
    np.testing.assert_allclose(nifti.load(saved).geometry.affine, nifti.load(image).geometry.affine)


def test_a_dropped_dicom_series_predicts_and_saves_in_its_world_geometry(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task
):
    """Issue 29: a DICOM folder dropped with no task open is predicted in the Predict tab; Save writes NIfTI (a
    series has no label format of its own but DICOM SEG) on the series' world grid."""
    from series_writer import write_series

    from napari_volseg._napari.widgets import PredictWidget
    from napari_volseg.io import volumes

    ship_a_model(tmp_path, monkeypatch)
    source = volumes.read(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")
    series = write_series(tmp_path / "spleen_002", source, modality="CT")
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    loading.open_files(predict.session, [series])
    qtbot.waitUntil(lambda: "spleen_002" in viewer.layers and not predict.session.busy_loading())
    assert predict.chooser.select("organ-pretrained")
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None and "spleen_002 prediction" in viewer.layers, timeout=120_000)
    layer = viewer.layers["spleen_002 prediction"]
    [saved] = predict.save_predictions(tmp_path / "preds")
    assert saved.name == "spleen_002.nii.gz"
    written = volumes.read(saved, label=True)
    np.testing.assert_array_equal(written.data, np.asarray(layer.data))
    assert written.geometry.same_world_grid(source.geometry, tol_mm=1e-4)


def test_a_dropped_scan_the_model_trained_on_is_starred(make_napari_viewer, qtbot, tiny_ct_task, tiny_checkpoint):
    """Issue 26 item 5: la_003 dropped and predicted with msd-heart read 0.9567 with no star, above the card's held-out
    figure; a scan whose name the checkpoint lists as a training case is starred, and the status says why."""
    from napari_volseg._napari.widgets import PredictWidget
    from napari_volseg.zoo.backend import provenance

    case = next(f"spleen_00{i}" for i in range(1, 7) if provenance(tiny_checkpoint).trained_on(f"spleen_00{i}"))
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    loading.open_files(
        predict.session, [tiny_ct_task / "imagesTr" / f"{case}.nii.gz", tiny_ct_task / "labelsTr" / f"{case}.nii.gz"]
    )
    qtbot.waitUntil(lambda: f"{case} ground truth" in viewer.layers and not predict.session.busy_loading())
    predict.session.set_checkpoint(tiny_checkpoint)
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None and f"{case} errors" in viewer.layers, timeout=120_000)
    assert predict.table.item(0, 0).text() == f"{case} *"
    assert "a scan the model trained on" in predict.status.text()
    assert "training case(s) (*)" in predict.mean_label.text()
