"""The plugin inside a real napari viewer (needs OpenGL: run under xvfb-run, as scripts/test.sh does).

"A drop" is simulated as napari delivers one: ``viewer.open(paths, plugin=None)`` (napari's drop handler names no
plugin, so the reader preference decides; a script's ``viewer.open`` defaults to napari's builtins), called from inside
the running event loop (a timer fired while qtbot waits).
"""

import os

import numpy as np
import pytest
from conftest import recording_trainer

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A fresh install: napari-volseg has not claimed napari's reader preference yet."""
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))


def drop(qtbot, viewer, paths):
    """``paths`` opened as a drop is: from napari's running event loop, no plugin named."""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, lambda: viewer.open(paths, plugin=None))
    qtbot.wait(50)


def test_first_drop_before_activation_preselects_napari_volseg(make_napari_viewer, fresh, tiny_ct_task):
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog
    from napari.plugins import _npe2

    make_napari_viewer()
    path = str(tiny_ct_task / "imagesTr" / "spleen_003.nii.gz")
    readers = _npe2.get_readers(path)
    assert "napari-volseg" in readers
    dialog = QtReaderDialog(pth=path, readers=readers)
    assert readers[next(k for k, v in readers.items() if v == dialog._get_plugin_choice())] == "VolSeg"


def test_after_activation_nifti_and_task_folders_open_without_a_dialog(make_napari_viewer, fresh, tiny_ct_task):
    from napari.settings import get_settings

    from napari_volseg._napari.preferences import PLUGIN, READER_PATTERNS, activate, claim_reader_preference

    viewer = make_napari_viewer()
    get_settings().plugins.extension2reader = {"*.nii": "some-other-reader"}  # the user's own choice stays
    activate()
    prefs = get_settings().plugins.extension2reader
    assert prefs["*.nii"] == "some-other-reader" and prefs["*.nii.gz"] == PLUGIN
    assert prefs[READER_PATTERNS[-1]] == PLUGIN
    get_settings().plugins.extension2reader = {"*.nii": "some-other-reader"}  # removed later in Preferences
    assert claim_reader_preference() == {}  # claimed once: the user's removal is kept
    get_settings().plugins.extension2reader = prefs

    # no plugin named, as a drop: no MultipleReaderError (napari's cue for the Choose-reader dialog)
    viewer.open(str(tiny_ct_task / "imagesTr" / "spleen_003.nii.gz"), plugin=None)
    viewer.open(str(tiny_ct_task / "labelsTr" / "spleen_003.nii.gz"), plugin=None)
    image, labels = viewer.layers
    assert (image.name, labels.name) == ("spleen_003", "spleen_003 ground truth")
    assert image.__class__.__name__ == "Image" and labels.__class__.__name__ == "Labels"
    np.testing.assert_allclose(image.scale, (5.0, 2.0, 2.0), rtol=1e-6)
    np.testing.assert_allclose(labels.translate, image.translate)
    viewer.layers.clear()
    viewer.open(str(tiny_ct_task), plugin=None)
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]


def test_a_text_file_is_not_ours(make_napari_viewer, tmp_path):
    from napari.plugins import _npe2

    notes = tmp_path / "notes.txt"
    notes.write_text("not a scan")
    assert "napari-volseg" not in _npe2.get_readers(str(notes))


def test_dropped_task_folder_opens_as_the_task(make_napari_viewer, fresh, qtbot, tiny_ct_task, monkeypatch):
    from napari_volseg.engine import trainer as train_module

    monkeypatch.setattr(train_module, "Trainer", recording_trainer())  # Train's start is checked here, not training
    from napari_volseg._napari.preferences import claim_reader_preference
    from napari_volseg._napari.widgets import VolsegDock

    viewer = make_napari_viewer(show=True)
    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg")
    claim_reader_preference()
    drop(qtbot, viewer, [str(tiny_ct_task)])
    data, train = dock.widgets["Data"], dock.widgets["Train"]
    qtbot.waitUntil(lambda: data.table.rowCount() == 6 and len(viewer.layers) == 2, timeout=60_000)
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]
    assert data.session.task.root == tiny_ct_task
    assert "6 labelled" in data.summary.text()
    assert train.start() is not None  # Train can start: the dropped folder is the session's task
    qtbot.waitUntil(lambda: train.worker is None, timeout=10_000)


def test_dropped_image_and_label_read_in_a_worker(make_napari_viewer, fresh, qtbot, tiny_ct_task):
    from napari_volseg._napari.loading import session_for
    from napari_volseg._napari.preferences import claim_reader_preference
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.data import NO_TASK

    viewer = make_napari_viewer(show=True)
    session = session_for(viewer)
    data = DataWidget(viewer)  # docked, no task open
    claim_reader_preference()
    started = []
    session.status.connect(lambda text: started.append(text) if text else None)
    drop(qtbot, viewer, [str(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")])
    drop(qtbot, viewer, [str(tiny_ct_task / "labelsTr" / "spleen_002.nii.gz")])
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=60_000)
    assert sorted(layer.name for layer in viewer.layers) == ["spleen_002", "spleen_002 ground truth"]
    assert started and all(text.startswith("reading spleen_002") for text in started)  # read by the session's worker
    # read: the Data tab no longer says "reading ..." (it did until a task was opened)
    qtbot.waitUntil(lambda: not session.busy_loading(), timeout=60_000)
    qtbot.waitUntil(lambda: data.summary.text() == NO_TASK, timeout=10_000)


def test_opening_a_task_keeps_the_dropped_scans_layers(make_napari_viewer, fresh, qtbot, tiny_ct_task, tmp_path):
    """Dropped files (and what was predicted on them) are the user's: opening a task adds its first case beside them
    (it removed them, without a word)."""
    import shutil

    from napari_volseg._napari.preferences import claim_reader_preference
    from napari_volseg._napari.widgets import DataWidget

    viewer = make_napari_viewer(show=True)
    data = DataWidget(viewer)
    claim_reader_preference()
    own = tmp_path / "mine.nii.gz"  # the user's own scan, outside the task
    shutil.copyfile(tiny_ct_task / "imagesTr" / "spleen_004.nii.gz", own)
    drop(qtbot, viewer, [str(own)])
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=60_000)
    viewer.add_labels(np.zeros(viewer.layers[0].data.shape, np.uint8), name="my edits")  # not the plugin's either
    data.open_task(tiny_ct_task)
    qtbot.waitUntil(lambda: data.table.rowCount() == 6, timeout=60_000)
    qtbot.waitUntil(lambda: not data.session.busy_loading() and "spleen_001" in viewer.layers, timeout=60_000)
    assert sorted(layer.name for layer in viewer.layers) == [
        "mine",
        "my edits",
        "spleen_001",
        "spleen_001 ground truth",
    ]
    data.open_case("spleen_002")  # another case reuses the first case's layers, never the dropped ones
    qtbot.waitUntil(lambda: not data.session.busy_loading() and "spleen_002" in viewer.layers, timeout=60_000)
    qtbot.wait(100)
    assert sorted(layer.name for layer in viewer.layers) == [
        "mine",
        "my edits",
        "spleen_002",
        "spleen_002 ground truth",
    ]


def test_a_dropped_scan_named_like_a_task_case_is_not_that_case(
    make_napari_viewer, fresh, qtbot, tiny_ct_task, tmp_path
):
    """A dropped ``spleen_001.nii.gz`` of another scan: the task's spleen_001 still opens beside it (counted as the
    task's case, it never did), and a task case's prediction never refills the dropped scan's prediction."""
    import shutil

    from napari_volseg._napari.layers import META_KEY
    from napari_volseg._napari.preferences import claim_reader_preference
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.common import set_labels
    from napari_volseg.io import nifti

    viewer = make_napari_viewer(show=True)
    data = DataWidget(viewer)
    claim_reader_preference()
    (tmp_path / "mine").mkdir()
    own = tmp_path / "mine" / "spleen_001.nii.gz"  # another scan, the task's case name
    shutil.copyfile(tiny_ct_task / "imagesTr" / "spleen_004.nii.gz", own)
    drop(qtbot, viewer, [str(own)])
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=60_000)
    dropped = viewer.layers[0]
    mine = set_labels(
        viewer, "spleen_001 prediction", np.ones(dropped.data.shape, np.uint8), dropped, "prediction", "spleen_001"
    )
    data.open_task(tiny_ct_task)
    qtbot.waitUntil(lambda: not data.session.busy_loading() and len(viewer.layers) == 4, timeout=60_000)
    task_images = [
        la for la in viewer.layers if la.metadata[META_KEY].get("task") and la.metadata[META_KEY]["role"] == "image"
    ]
    assert len(task_images) == 1
    np.testing.assert_array_equal(task_images[0].data, nifti.load(tiny_ct_task / "imagesTr" / "spleen_001.nii.gz").data)
    # another task case's prediction (spleen_002's, drawn on the open image's grid) reuses no dropped layer
    theirs = set_labels(
        viewer,
        "spleen_002 prediction",
        np.zeros(task_images[0].data.shape, np.uint8),
        task_images[0],
        "prediction",
        "spleen_002",
    )
    assert theirs is not mine and np.asarray(mine.data).all()  # the dropped scan's prediction is untouched


def test_a_task_opened_by_a_script_becomes_the_session_task(make_napari_viewer, qtbot, tiny_ct_task, tmp_path):
    from napari_volseg._napari.widgets import DataWidget

    viewer = make_napari_viewer()
    viewer.open(str(tiny_ct_task), plugin="napari-volseg")  # no event loop running: read at once
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]
    data = DataWidget(viewer)  # opened afterwards from the Plugins menu
    qtbot.waitUntil(lambda: data.table.rowCount() == 6, timeout=60_000)
    assert data.session.case_id == "spleen_001" and len(viewer.layers) == 2


def test_sample_data_opens(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-volseg", "synthetic-ct")
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]


def test_save_labels_layer_through_the_writer(make_napari_viewer, tiny_ct_task, tmp_path):
    from napari_volseg.io import nifti

    viewer = make_napari_viewer()
    source = tiny_ct_task / "labelsTr" / "spleen_004.nii.gz"
    viewer.open(str(source), plugin="napari-volseg")
    out = tmp_path / "edited.nii.gz"
    viewer.layers[0].save(str(out), plugin="napari-volseg")
    np.testing.assert_array_equal(nifti.load(out, label=True).data, nifti.load(source, label=True).data)


def test_the_last_case_asked_for_wins(make_napari_viewer, qtbot, tiny_ct_task):
    """A case still loading must not replace the case the user asked for after it (two quick clicks)."""
    from napari_volseg._napari.widgets import DataWidget

    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    data.open_task(tiny_ct_task)
    qtbot.waitUntil(lambda: not data.session.busy_loading() and "spleen_001" in viewer.layers, timeout=60_000)
    data.open_case("spleen_003")  # loads in a worker...
    data.open_case("spleen_001")  # ...while the case already shown is asked for again
    qtbot.waitUntil(lambda: not data.session.busy_loading(), timeout=60_000)
    qtbot.wait(100)
    assert [layer.name for layer in viewer.layers] == ["spleen_001", "spleen_001 ground truth"]
    assert data.session.case_id == "spleen_001"


def test_steps_opened_as_docks_of_their_own_scroll_and_fit_a_laptop_screen(make_napari_viewer, qtbot):
    """The Plugins menu's single steps: Train and Predict stacked asked 970 px unscrolled and pushed the window past a
    768 px screen; as scrollable docks the window keeps 1366 x 768 and each step widget is inside."""
    from napari_volseg._napari.widgets import PredictWidget, TrainWidget

    viewer = make_napari_viewer(show=True)
    _, train = viewer.window.add_plugin_dock_widget("napari-volseg", "Train")
    _, predict = viewer.window.add_plugin_dock_widget("napari-volseg", "Predict & evaluate")
    window = train.window()  # napari's main window, through Qt's public API (not napari's private _qt_window)
    window.resize(1366, 768)
    qtbot.wait(200)
    assert isinstance(train.step_widget, TrainWidget) and isinstance(predict.step_widget, PredictWidget)
    assert train.minimumSizeHint().height() < 200 and predict.minimumSizeHint().height() < 200
    assert window.height() <= 768, window.height()


def test_dicom_and_nrrd_drops_open_without_a_dialog_and_two_series_ask_which(
    make_napari_viewer, fresh, qtbot, tiny_ct_task, tmp_path, monkeypatch
):
    import SimpleITK as sitk
    from series_writer import write_series

    from napari_volseg._napari.preferences import activate
    from napari_volseg.io import volumes

    mixed = tmp_path / "export"
    for n, case in enumerate(("spleen_001", "spleen_002")):  # two series side by side, as hospital exports come
        write_series(mixed, volumes.read(tiny_ct_task / "imagesTr" / f"{case}.nii.gz"), "CT", seed=n, description=case)
    nrrd = tmp_path / "spleen_003.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(tiny_ct_task / "imagesTr" / "spleen_003.nii.gz")), str(nrrd))
    asked = []

    def choose(folder, series):
        asked.append(sorted(s.description for s in series))
        return next(s.uid for s in series if s.description == "spleen_002")

    monkeypatch.setattr("napari_volseg._napari.series_dialog.choose_series", choose)
    viewer = make_napari_viewer()
    activate()
    drop(qtbot, viewer, [str(nrrd)])  # claimed like NIfTI: no Choose-reader dialog
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=20_000)
    assert viewer.layers[0].name == "spleen_003"
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, lambda: viewer.open(str(mixed), plugin="napari-volseg"))  # a folder: napari names the reader
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=20_000)
    assert asked == [["spleen_001", "spleen_002"]]
    expected = volumes.read(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")
    np.testing.assert_array_equal(viewer.layers[1].data, expected.data)
    np.testing.assert_allclose(viewer.layers[1].scale, expected.spacing, rtol=1e-5)


def test_a_second_environments_napari_settings_get_the_claim_too(make_napari_viewer, fresh, monkeypatch):
    """Issue 26 item 2: the claim's marker sat in the user's cache while napari keeps its settings per environment:
    a second environment never got the claim and every drop asked which reader."""
    from napari.settings import get_settings

    from napari_volseg._napari import preferences

    make_napari_viewer()
    monkeypatch.setattr(preferences, "settings_file", lambda: "/envs/first/napari/settings.yaml")
    get_settings().plugins.extension2reader = {}
    assert set(preferences.claim_reader_preference()) == set(preferences.READER_PATTERNS)
    monkeypatch.setattr(preferences, "settings_file", lambda: "/envs/second/napari/settings.yaml")
    get_settings().plugins.extension2reader = {}  # the second environment's own, empty settings
    assert set(preferences.claim_reader_preference()) == set(preferences.READER_PATTERNS)
    assert get_settings().plugins.extension2reader["*.nii.gz"] == preferences.PLUGIN
    get_settings().plugins.extension2reader = {}  # removed there by the user: kept removed
    assert preferences.claim_reader_preference() == {}


def test_any_folder_opens_in_one_step_and_others_go_to_napari(
    make_napari_viewer, fresh, tiny_ct_task, tmp_path, notifications
):
    """Every folder is claimed (a DICOM series folder has any name): no Choose-reader dialog for a DICOM series named
    ``SE0003``; a folder of PNG slices still opens as napari's own reader opens it; a folder of task folders says
    which to drop."""
    import shutil

    import imageio.v3 as iio
    from napari.settings import get_settings
    from series_writer import write_series

    from napari_volseg._napari.preferences import claim_reader_preference
    from napari_volseg.io import nifti

    viewer = make_napari_viewer()
    claim_reader_preference()
    assert get_settings().plugins.extension2reader["*?/"] == "napari-volseg"
    volume = nifti.load(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz")
    series = write_series(tmp_path / "SE0003", volume)
    viewer.open(str(series), plugin=None)  # no plugin named, as a drop: a MultipleReaderError meant a dialog
    assert len(viewer.layers) == 1 and viewer.layers[0].data.shape == volume.data.shape
    viewer.layers.clear()

    slices = tmp_path / "slices"
    slices.mkdir()
    for i in range(3):
        iio.imwrite(slices / f"s{i}.png", np.full((8, 9), 40 * i, np.uint8))
    viewer.open(str(slices), plugin=None)
    assert len(viewer.layers) == 1 and viewer.layers[0].data.shape == (3, 8, 9)  # napari's stack of slices
    assert notifications[-1].message == (
        "slices holds no scans napari-volseg reads: opened by napari's own reader, as a stack of images"
    )
    notifications.clear()
    viewer.layers.clear()

    many = tmp_path / "MSD"
    shutil.copytree(tiny_ct_task, many / "Task09_Spleen")
    viewer.open(str(many), plugin=None)
    assert len(viewer.layers) == 0
    assert [n.message for n in notifications] == [
        "MSD holds 1 task folder(s) (Task09_Spleen): drop one of them to open it"
    ]


def test_one_drop_of_a_scan_and_its_label_is_read_by_one_worker_in_one_order(
    make_napari_viewer, fresh, qtbot, tiny_ct_task
):
    """napari hands the reader one file at a time: each was read by a worker of its own, and they raced. Now one
    worker reads the drop, and the layers go in one order: the label, then its image under it."""
    from napari_volseg._napari.loading import session_for
    from napari_volseg._napari.preferences import claim_reader_preference

    viewer = make_napari_viewer(show=True)
    session = session_for(viewer)
    claim_reader_preference()
    said = []
    session.status.connect(lambda text: said.append(text) if text else None)
    inserted = []
    viewer.layers.events.inserted.connect(lambda event: inserted.append(event.value.name))
    image, label = (tiny_ct_task / sub / "spleen_003.nii.gz" for sub in ("imagesTr", "labelsTr"))
    drop(qtbot, viewer, [str(image), str(label)])  # the drop's order does not decide
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 and not session.busy_loading(), timeout=60_000)
    assert said == ["reading spleen_003.nii.gz and 1 more…"]
    assert inserted == ["spleen_003 ground truth", "spleen_003"]
    assert [layer.name for layer in viewer.layers] == ["spleen_003", "spleen_003 ground truth"]
