"""Bad inputs in napari: one notification each, and the widget back to idle with nothing written."""

import os

import numpy as np
import pytest
from conftest import write_nifti

from napari_volseg._napari import loading

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


def _messages(shown):
    return [(str(n.severity), n.message) for n in shown]


def test_a_degenerate_affine_dropped_on_the_viewer_opens_with_one_warning(make_napari_viewer, tmp_path, notifications):
    data = np.zeros((6, 5, 4), np.float32)
    path = write_nifti(tmp_path / "scan.nii.gz", data, sform=np.zeros((4, 4)), qform=np.diag([2.0, 3.0, 4.0, 1.0]))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-volseg")
    assert [layer.name for layer in viewer.layers] == ["scan"]
    np.testing.assert_allclose(viewer.layers["scan"].scale, (4.0, 3.0, 2.0))
    assert _messages(notifications) == [("warning", "scan.nii.gz: its sform is degenerate (singular); using its qform")]


def test_a_folder_with_nothing_to_open_is_one_line(make_napari_viewer, tmp_path, notifications):
    """Dropped on the viewer, a folder without dataset.json or NIfTI scans: napari, after its Choose-reader dialog,
    raised that the reader 'refused the file'; now one warning says why and nothing opens."""
    from napari_volseg._napari.reader import napari_get_reader

    folder = tmp_path / "emptyfolder"
    folder.mkdir()
    (folder / "notes.txt").write_text("no scans here")
    viewer = make_napari_viewer()
    assert napari_get_reader(str(folder)) is not None  # claimed, so napari does not answer with its own error
    viewer.open(str(folder), plugin="napari-volseg")
    assert len(viewer.layers) == 0
    assert _messages(notifications) == [
        (
            "warning",
            "emptyfolder is not an MSD task folder (no dataset.json) and holds no scans (NIfTI .nii/.nii.gz, NRRD "
            ".nrrd/.nhdr/.seg.nrrd, MetaImage .mha/.mhd, or a DICOM series folder) nor images napari reads: nothing to "
            "open",
        )
    ]


def test_a_scans_folder_dropped_after_the_dock_closed_is_one_line(make_napari_viewer, qtbot, tmp_path, notifications):
    """A closed Data dock no longer answers drops (its dialog raised "wrapped C/C++ object ... has been deleted")."""
    from qtpy.QtWidgets import QApplication

    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.new_task import offer

    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    offers = data.session.folder_offered
    assert len(offers) == 1
    destroyed = []
    data.destroyed.connect(lambda *_: destroyed.append(True))
    data.deleteLater()
    qtbot.waitUntil(lambda: destroyed == [True], timeout=5_000)
    QApplication.processEvents()
    assert len(offers) == 0
    offer(tmp_path / "scans")
    assert _messages(notifications) == [
        ("info", "scans has no dataset.json: Data → New task from images… makes it a task")
    ]


@pytest.fixture
def widgets(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.widgets import DataWidget, PredictWidget, TrainWidget

    viewer = make_napari_viewer()
    return viewer, DataWidget(viewer), TrainWidget(viewer), PredictWidget(viewer)


def open_task(qtbot, data, folder) -> None:
    """Open a task and wait for its worker (tasks are read in workers)."""
    data.open_task(folder)
    qtbot.waitUntil(lambda: data.session.task is not None and not data.session.busy_loading(), timeout=60_000)


def test_train_refuses_an_unwritable_runs_folder_before_training(
    widgets, qtbot, tiny_ct_task, unwritable_dir, monkeypatch, notifications
):
    _, data, train, _ = widgets
    open_task(qtbot, data, tiny_ct_task)
    monkeypatch.setenv("VOLSEG_CACHE", str(unwritable_dir / "cache"))  # runs go to VOLSEG_CACHE/runs
    notifications.clear()
    assert train.start() is None
    [(severity, message)] = _messages(notifications)
    assert severity == "error" and message.startswith(f"cannot write checkpoint {unwritable_dir}/cache/runs/")
    assert message.endswith(f": no permission to write in {unwritable_dir}")
    assert train.worker is None and train.start_button.isEnabled() and not train.stop_button.isEnabled()
    assert list(unwritable_dir.iterdir()) == []


def test_train_refuses_bad_settings_from_the_form_before_training(widgets, qtbot, tiny_ct_task, notifications):
    _, data, train, _ = widgets
    open_task(qtbot, data, tiny_ct_task)
    train.current_preset = lambda: train.session.presets["fast-cpu"].with_overrides(lr=-1.0)  # out of range
    notifications.clear()
    assert train.start() is None
    assert _messages(notifications) == [("error", "train.lr must be > 0 (got -1.0)")]
    assert train.worker is None and train.start_button.isEnabled()


def test_predict_refuses_to_save_into_an_unwritable_folder(widgets, qtbot, tiny_ct_task, unwritable_dir, notifications):
    from napari_volseg.evaluate import CaseResult
    from napari_volseg.io import decathlon

    _, data, _, predict = widgets
    open_task(qtbot, data, tiny_ct_task)
    case = decathlon.load_task(tiny_ct_task).cases[0]
    image = case.load_image()
    predict.session.add_result(CaseResult(case.id, np.zeros(image.data.shape, np.uint8), image.geometry))
    notifications.clear()
    assert predict.save_predictions(unwritable_dir / "predictions") == []
    assert predict.export_csv(unwritable_dir / "dice.csv") is None
    assert [severity for severity, _ in _messages(notifications)] == ["error", "error"]
    assert all("no permission to write in" in message for _, message in _messages(notifications))
    assert list(unwritable_dir.iterdir()) == [] and predict.worker is None


def test_a_corrupt_file_read_in_a_worker_is_one_error_line(make_napari_viewer, qtbot, tmp_path, notifications):
    """The worker's error reaches the plugin's one-line notification only: superqt must not re-raise it on the GUI
    thread as well (napari showed that as a second pop-up and printed it with the file's read buffer)."""
    from napari_volseg._napari.loading import open_files, session_for

    whole = write_nifti(
        tmp_path / "whole.nii.gz", np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32)
    )
    corrupt = tmp_path / "scan.nii.gz"
    corrupt.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    viewer = make_napari_viewer()
    session = session_for(viewer)
    open_files(session, [corrupt])
    qtbot.waitUntil(lambda: not session.busy_loading(), timeout=30_000)
    qtbot.wait(100)
    messages = _messages(notifications)
    assert len(messages) == 1 and messages[0][0] == "error", messages
    assert "scan.nii.gz" in messages[0][1] and "\n" not in messages[0][1]
    assert len(viewer.layers) == 0


def test_a_runtime_error_in_a_generator_worker_is_one_error_and_the_worker_ends(qtbot, notifications):
    """superqt takes a generator's RuntimeError (torch's errors are) for its own quitting: without the plugin's guard
    the worker ended with neither errored nor finished, and Predict stayed on Stop for ever."""
    from napari_volseg._napari.notify import background, notify_error

    @background
    def work():
        yield 1
        raise RuntimeError("out of memory: tried to allocate 9 GB")

    worker = work()
    ended, errors = [], []
    worker.errored.connect(lambda exc: (errors.append(exc), notify_error(exc)))
    worker.finished.connect(lambda: ended.append(True))
    worker.start()
    qtbot.waitUntil(lambda: ended == [True], timeout=10_000)
    assert [type(e).__name__ for e in errors] == ["VolsegError"]
    assert _messages(notifications) == [("error", "RuntimeError: out of memory: tried to allocate 9 GB")]


def test_a_4d_scan_says_it_opened_as_channels_and_predict_says_which_it_used(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task, notifications
):
    """Issue 26 item 4: a 4D NIfTI was split into '[0]' / '[1]' layers in silence, and Predict used channel [1]
    without a word."""
    from test_model_chooser import ship_a_model

    from napari_volseg._napari.widgets import PredictWidget
    from napari_volseg.io import volumes

    ship_a_model(tmp_path, monkeypatch)
    scan = volumes.read(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")
    four = write_nifti(tmp_path / "two.nii.gz", np.stack([scan.data.T, scan.data.T], axis=-1).astype(np.float32))
    viewer = make_napari_viewer(show=True)
    predict = PredictWidget(viewer)
    viewer.add_labels(np.zeros((2, 2, 2), np.uint8), name="earlier labels")  # the volumes go under it: moved
    loading.open_files(predict.session, [four])
    qtbot.waitUntil(lambda: "two [1]" in viewer.layers and not predict.session.busy_loading(), timeout=20_000)
    qtbot.wait(300)  # the layer list's own reactions
    said = [m for _, m in _messages(notifications)]
    opened = "two.nii.gz holds 2 volumes (channels or time points): opened as 'two [0]' (shown) to 'two [1]' (hidden)"
    assert any(opened in m for m in said), said
    assert viewer.layers["two [0]"].visible and not viewer.layers["two [1]"].visible  # not overlaid additively
    # the one shown is the one Predict reads (the walkthrough's, moved under its labels, had nothing selected and
    # Predict took the top image: the hidden 'two [1]')
    assert [layer.name for layer in viewer.layers.selection] == ["two [0]"]
    assert predict.chooser.select("organ-pretrained")
    viewer.layers.selection.clear()  # nothing chosen: a one-channel model does not pick a volume in silence
    notifications.clear()
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: bool(_messages(notifications)), timeout=20_000)
    assert _messages(notifications)[-1] == (
        "error",
        "two holds 2 volumes (channels or time points) and the model reads one: select the layer of the one to "
        "segment ('two [0]' to 'two [1]'), then Predict",
    )
    assert "two prediction" not in viewer.layers
    viewer.layers.selection.active = viewer.layers["two [0]"]
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: "predicted" in predict.status.text(), timeout=20_000)
    assert "volume 0 of two" in predict.status.text() and "two prediction" in viewer.layers


def test_a_volume_chosen_in_the_plugin_menus_dock_is_predicted(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task, notifications
):
    """The walkthrough's 4D scan could not be predicted from the Plugins menu's dock whichever volume was selected:
    napari hands plugins a proxy of the viewer, a new proxy per access, and the selection was compared by identity.
    The volume shown after the drop is the one selected."""
    from test_model_chooser import ship_a_model

    from napari_volseg.io import volumes

    ship_a_model(tmp_path, monkeypatch)
    scan = volumes.read(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")
    four = write_nifti(tmp_path / "two.nii.gz", np.stack([scan.data.T, scan.data.T], axis=-1).astype(np.float32))
    viewer = make_napari_viewer()
    _, step_dock = viewer.window.add_plugin_dock_widget("napari-volseg", "Predict & evaluate")
    predict = step_dock.step_widget
    loading.open_files(predict.session, [four])
    qtbot.waitUntil(lambda: "two [1]" in viewer.layers and not predict.session.busy_loading(), timeout=20_000)
    assert viewer.layers.selection.active.name == "two [0]"  # the shown volume, not the hidden last one
    assert predict.chooser.select("organ-pretrained")
    viewer.layers.selection.active = viewer.layers["two [1]"]
    notifications.clear()
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: "predicted" in predict.status.text(), timeout=20_000)
    assert "volume 1 of two" in predict.status.text() and not [m for s, m in _messages(notifications) if s == "error"]


def test_a_4d_scan_opened_by_a_script_shows_the_volume_predicted(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task
):
    """Read without a running event loop (a script's viewer.open), napari adds a 4D scan's volumes itself and
    selects the last, hidden one: the walkthrough's Predict segmented 'heart_4d [1]' and drew it over '[0]', shown.
    The volume segmented is now the one shown."""
    from test_model_chooser import ship_a_model

    from napari_volseg._napari.widgets import PredictWidget
    from napari_volseg.io import volumes

    ship_a_model(tmp_path, monkeypatch)
    scan = volumes.read(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")
    four = write_nifti(tmp_path / "two.nii.gz", np.stack([scan.data.T, scan.data.T * 0], axis=-1).astype(np.float32))
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    viewer.open(str(four), plugin="napari-volseg")
    assert viewer.layers.selection.active.name == "two [1]" and not viewer.layers["two [1]"].visible
    assert predict.chooser.select("organ-pretrained")
    assert predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: "predicted" in predict.status.text(), timeout=20_000)
    assert "volume 1 of two" in predict.status.text()
    assert viewer.layers["two [1]"].visible and not viewer.layers["two [0]"].visible


def test_a_dropped_scans_row_goes_with_its_layer(make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task):
    """The walkthrough deleted the layers of its dropped scans; their rows stayed in Predict's table."""
    from test_model_chooser import ship_a_model

    from napari_volseg._napari.widgets import PredictWidget

    ship_a_model(tmp_path, monkeypatch)
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    loading.open_files(predict.session, [tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"])
    qtbot.waitUntil(lambda: "spleen_002" in viewer.layers and not predict.session.busy_loading(), timeout=20_000)
    assert predict.chooser.select("organ-pretrained") and predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None and predict.table.rowCount() == 1, timeout=120_000)
    viewer.layers.remove("spleen_002 prediction")
    assert predict.table.rowCount() == 1  # its prediction alone: the scan is still there
    viewer.layers.remove("spleen_002")
    assert predict.table.rowCount() == 0 and not predict.session.results


def test_a_dropped_scan_selected_beside_a_task_is_the_one_predicted(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, tiny_ct_task
):
    """The walkthrough selected a dropped scan with a task open and pressed Predict: the task's open case was
    predicted, its prediction drawn under the dropped scan shown above it."""
    from test_model_chooser import ship_a_model

    from napari_volseg._napari.widgets import PredictWidget

    ship_a_model(tmp_path, monkeypatch)
    viewer = make_napari_viewer()
    predict = PredictWidget(viewer)
    loading.open_task(predict.session, tiny_ct_task)
    qtbot.waitUntil(lambda: predict.session.task is not None and not predict.session.busy_loading(), timeout=20_000)
    mine = tmp_path / "mine.nii.gz"
    mine.write_bytes((tiny_ct_task / "imagesTr" / "spleen_004.nii.gz").read_bytes())
    loading.open_files(predict.session, [mine])
    qtbot.waitUntil(lambda: "mine" in viewer.layers and not predict.session.busy_loading(), timeout=20_000)
    viewer.layers.selection.active = viewer.layers["mine"]
    assert predict.chooser.select("organ-pretrained") and predict.predict("current case") is not None
    qtbot.waitUntil(lambda: predict.worker is None and "mine prediction" in viewer.layers, timeout=120_000)
    assert not predict.session.results  # the task's open case was not predicted
