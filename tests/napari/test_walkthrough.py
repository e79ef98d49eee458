"""A newcomer's first session, scripted, in a 1366 x 768 window: drop files, drop the task folder, train a few steps,
Stop, predict with the stopped model, click a result row, export, save. Every control of every tab can be scrolled
into the screen, and napari showed no error notification."""

import os

import pytest
from conftest import quick_preset

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")

SCREEN = (1366, 768)


def controls_outside_the_screen(dock) -> list[str]:
    """Controls of each tab that stay outside the window's 1366 x 768 even when scrolled to."""
    from qtpy.QtCore import QPoint, QRect
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QTableWidget

    screen = QRect(0, 0, *SCREEN)
    outside = []
    for index, (title, widget) in enumerate(dock.widgets.items()):
        dock.tabs.setCurrentIndex(index)
        area = dock.tabs.widget(index)
        for control in widget.findChildren((QAbstractButton, QAbstractSpinBox, QComboBox, QTableWidget)):
            if not control.isVisibleTo(widget):
                continue
            area.ensureWidgetVisible(control, 0, 0)
            top_left = control.mapToGlobal(QPoint(0, 0))
            rect = QRect(top_left, control.size())
            if not screen.contains(rect.center()) or not area.viewport().rect().contains(
                area.viewport().mapFromGlobal(rect.center())
            ):
                outside.append(f"{title}: {type(control).__name__} {getattr(control, 'text', lambda: '')()}")
    return outside


def test_newcomer_walkthrough_at_laptop_size(make_napari_viewer, qtbot, tiny_ct_task, tmp_path, monkeypatch):
    from napari.utils.notifications import NotificationSeverity, notification_manager
    from qtpy.QtCore import Qt, QTimer

    from napari_volseg._napari.preferences import claim_reader_preference
    from napari_volseg._napari.widgets import VolsegDock
    from napari_volseg.engine import checkpoint as ckpt

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    notes = []
    notification_manager.notification_ready.connect(notes.append)
    viewer = make_napari_viewer(show=True)
    viewer.window.set_geometry(0, 0, *SCREEN)
    dock = VolsegDock(viewer)  # Plugins > VolSeg > All steps (tabs)
    viewer.window.add_dock_widget(dock, name="napari-volseg", area="right")
    claim_reader_preference()  # what napari's activation of the plugin does
    data, train, predict = (dock.widgets[t] for t in ("Data", "Train", "Predict & evaluate"))

    def names():
        return [layer.name for layer in viewer.layers]

    def drop(*paths):
        QTimer.singleShot(0, lambda: viewer.open([str(p) for p in paths], plugin=None))
        qtbot.wait(50)

    # 1. drop an image and its label file
    drop(tiny_ct_task / "imagesTr" / "spleen_004.nii.gz")
    drop(tiny_ct_task / "labelsTr" / "spleen_004.nii.gz")
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=60_000)
    assert sorted(layer.name for layer in viewer.layers) == ["spleen_004", "spleen_004 ground truth"]

    # 2. drop the task folder: it becomes the task, its first case opens beside the dropped files (the user's)
    dropped = sorted(names())  # before the drop: the task's first layers may come in during the drop's wait
    drop(tiny_ct_task)
    # a case's layers arrive one per event-loop turn: wait for the whole case, and nothing else left over
    case_001 = ["spleen_001", "spleen_001 ground truth"]

    def task_layers():
        return [name for name in names() if name not in dropped]

    qtbot.waitUntil(lambda: data.table.rowCount() == 6 and task_layers() == case_001, timeout=60_000)
    assert set(dropped) <= set(names())  # kept

    # 3. train a few steps, then Stop
    q = quick_preset(epochs=100, patch_size=(16, 48, 48))
    train.session.presets["fast-cpu"] = q
    train.session.preset = q
    train.session.preset_changed.emit(q)
    dock.show_tab("Train")
    qtbot.mouseClick(train.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 3, timeout=600_000)
    qtbot.mouseClick(train.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: train.worker is None, timeout=120_000)
    model = train.session.checkpoint
    assert model is not None and model.name.endswith(".last.safetensors") and model.parent.name == "runs"
    assert ckpt.load(model).step >= 3 and "nan" not in train.status.text()

    # 4. predict the validation cases with the stopped model, click a row
    dock.show_tab("Predict & evaluate")
    qtbot.mouseClick(predict.run_button, Qt.LeftButton)  # the current case
    qtbot.waitUntil(lambda: predict.worker is None and predict.table.rowCount() == 1, timeout=600_000)
    predict.scope.setCurrentText("validation cases")
    qtbot.mouseClick(predict.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: predict.worker is None and predict.table.rowCount() >= 2, timeout=600_000)
    row = predict.table.rowCount() - 1
    case_id = predict.table.item(row, 0).text()
    cell = predict.table.visualItemRect(predict.table.item(row, 0)).center()
    qtbot.mouseClick(predict.table.viewport(), Qt.LeftButton, pos=cell)
    shown = [case_id, f"{case_id} ground truth", f"{case_id} prediction", f"{case_id} errors"]
    qtbot.waitUntil(lambda: task_layers() == shown, timeout=60_000)

    # 5. export the table and save the predictions
    csv = predict.export_csv(tmp_path / "dice.csv")
    assert csv is not None and len(csv.read_text().splitlines()) == 1 + predict.table.rowCount()
    assert csv.read_text().splitlines()[0].endswith(",model,trained_on")  # which model, and did it train on the case
    saved = predict.save_predictions(tmp_path / "predictions")
    assert len(saved) == predict.table.rowCount() and all(p.is_file() for p in saved)

    # every control can be reached inside the laptop screen, and nothing went wrong on the way
    assert controls_outside_the_screen(dock) == []
    # the Annotate tab says what to do (here: why there is nothing to annotate) in view as it opens, not below it
    from qtpy.QtCore import QPoint, QRect

    index = list(dock.widgets).index("Annotate")
    dock.tabs.setCurrentIndex(index)
    area = dock.tabs.widget(index)
    area.verticalScrollBar().setValue(0)
    qtbot.wait(50)
    status = dock.widgets["Annotate"].status
    assert status.text() and area.viewport().rect().contains(
        QRect(status.mapTo(area.viewport(), QPoint(0, 0)), status.size())
    )
    assert dock.parentWidget().geometry().bottom() <= SCREEN[1]
    errors = [n.message for n in notes if n.severity >= NotificationSeverity.ERROR]
    assert errors == []
