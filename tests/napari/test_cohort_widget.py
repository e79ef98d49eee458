"""The Predict tab's Cohort QC: a cohort folder's report written in a worker, its flagged scans listed, one opened
with its prediction."""

import shutil

from napari_volseg import cli


def test_cohort_qc_lists_the_flagged_scans_and_opens_one(
    make_napari_viewer, qtbot, tiny_ct_task, tiny_checkpoint, tmp_path
):
    from napari_volseg._napari.widgets import PredictWidget

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for f in sorted((tiny_ct_task / "imagesTr").iterdir()):
        shutil.copy(f, cohort / f.name)
    out = tmp_path / "out"
    assert cli.main(["predict", "--model", str(tiny_checkpoint), "--out", str(out), str(cohort)]) == 0
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    dialog = predict.cohort_dialog()
    worker = dialog.load(out)
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=60_000)
    assert (out / "qc.html").is_file() and dialog.report == out / "qc.html"
    assert dialog.table.rowCount() == len(dialog.flagged) > 0  # a model trained 8 steps is unsure of every scan
    assert "unsure" in dialog.table.item(0, 1).text()
    assert dialog.status.text().startswith(f"{len(dialog.flagged)} flagged scan(s) in out")
    assert worker is not None and dialog.report_button.isEnabled()
    dialog.open_row(0)
    case = dialog.table.item(0, 0).text().replace(".nii.gz", "")
    qtbot.waitUntil(lambda: f"{case} prediction" in viewer.layers, timeout=30_000)
    image, prediction = viewer.layers[case], viewer.layers[f"{case} prediction"]
    assert prediction.data.shape == image.data.shape and tuple(prediction.scale) == tuple(image.scale)
    assert prediction.data.max() > 0


def test_cohort_qc_of_a_folder_without_a_manifest_is_one_line(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_volseg._napari.widgets import PredictWidget

    said = []
    monkeypatch.setattr("napari_volseg._napari.widgets.cohort.notify_error", lambda exc: said.append(str(exc)))
    predict = PredictWidget(make_napari_viewer())  # the dialog's parent: held, as the dock holds it
    dialog = predict.cohort_dialog()
    worker = dialog.load(tmp_path)
    qtbot.waitUntil(lambda: bool(said), timeout=20_000)
    assert len(said) == 1 and "no manifest.csv" in said[0] and "\n" not in said[0]
    qtbot.waitUntil(lambda: dialog.pick_button.isEnabled(), timeout=5_000)
    assert worker is not None and dialog.table.rowCount() == 0 and predict.cohort_button.isEnabled()
