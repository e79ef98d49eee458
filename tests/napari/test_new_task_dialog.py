"""Issue 26 item 3, as a user meets it: the folder people have (images/ beside labels/) dropped on the viewer offers
the new-task dialog filled from it, the classes proposed from the label values, and a failed task keeps its fields."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


def _layout(tiny_ct_task, root):
    from napari_volseg.io import decathlon, nifti

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    task = decathlon.load_task(tiny_ct_task)
    for i, case in enumerate(task.cases[:3]):
        image, label = case.load()
        nifti.save_image(image.data, image.geometry, root / "images" / f"{case.id}.nii.gz")
        if i < 2:
            nifti.save_labels(
                (label.data * (i + 1)).astype(np.uint8), image.geometry, root / "labels" / f"{case.id}.nii.gz"
            )


def test_the_parent_of_images_and_labels_dropped_opens_as_a_task(
    make_napari_viewer, qtbot, tiny_ct_task, tmp_path, monkeypatch
):
    from napari_volseg._napari.reader import napari_get_reader
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.new_task import NewTaskDialog

    root = tmp_path / "MyLiver"
    _layout(tiny_ct_task, root)
    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    offered = []

    def accept_dialog(dialog):
        qtbot.waitUntil(lambda: dialog.classes.text() == "background,label1,label2", timeout=30_000)
        offered.append((dialog.values(), dialog.found.text()))
        return True

    monkeypatch.setattr(NewTaskDialog, "exec", accept_dialog)
    reader = napari_get_reader(str(root))  # before: "holds no NIfTI scans", nothing offered
    assert reader is not None and reader([str(root)]) == [(None,)]
    values, found = offered[0]
    assert values["images"] == root / "images" and values["labels"] == root / "labels"
    assert values["name"] == "MyLiver" and values["out"] == tmp_path / "MyLiver-task"
    assert found.startswith("found: 3 scan(s) in images/ (images/ + labels/)")
    assert "Note: the label files mark their foreground with different values" in found  # one file holds 1, one 2
    qtbot.waitUntil(lambda: data.session.task is not None, timeout=60_000)
    task = data.session.task
    assert task.name == "MyLiver" and len(task.cases) == 2 and len(task.test_cases) == 1
    assert task.labels == {0: "background", 1: "label1", 2: "label2"}


def test_a_failed_new_task_keeps_its_fields_and_says_one_line_without_cli_flags(
    make_napari_viewer, qtbot, tiny_ct_task, tmp_path, monkeypatch
):
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.new_task import NewTaskDialog

    root = tmp_path / "scans"
    _layout(tiny_ct_task, root)
    said = []
    monkeypatch.setattr("napari_volseg._napari.widgets.new_task.notify_error", lambda m: said.append(str(m)))
    data = DataWidget(make_napari_viewer())
    monkeypatch.setattr(NewTaskDialog, "remembered", {})

    def no_name(dialog):
        qtbot.waitUntil(lambda: dialog.classes.text() == "background,label1,label2", timeout=30_000)
        dialog.name.setText("")
        return True

    monkeypatch.setattr(NewTaskDialog, "exec", no_name)
    worker = data.new_task(root / "images")
    qtbot.waitUntil(lambda: bool(said), timeout=30_000)
    assert said == ["the task needs a name"] and worker is not None
    again = NewTaskDialog()  # opened again: the fields as they were, to correct
    qtbot.addWidget(again)
    assert again.images.text() == str(root / "images") and again.labels.text() == str(root / "labels")
    assert again.classes.text() == "background,label1,label2" and again.name.text() == ""


def test_an_nnunet_folder_with_its_dataset_json_is_scans_to_make_a_task_of(tiny_ct_task, tmp_path):
    from napari_volseg._napari.reader import napari_get_reader, read_scans_folder
    from napari_volseg.io.decathlon import is_task_folder

    root = tmp_path / "Dataset501"
    _layout(tiny_ct_task, root)
    (root / "images").rename(root / "imagesTr")
    (root / "labels").rename(root / "labelsTr")
    (root / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "a": 1, "b": 2}, "file_ending": ".nii.gz"})
    )
    assert not is_task_folder(root) and napari_get_reader(str(root)) is read_scans_folder


def test_a_dicom_study_folder_still_opens_as_series_not_as_a_new_task(tiny_ct_task, tmp_path):
    """A PATIENT/SERIES/*.dcm folder opened its series before the layouts were found; it still does."""
    from series_writer import write_series

    from napari_volseg._napari.reader import napari_get_reader, read_volumes
    from napari_volseg.io import volumes

    write_series(tmp_path / "PATIENT" / "SERIES", volumes.read(tiny_ct_task / "imagesTr" / "spleen_002.nii.gz"), "CT")
    assert napari_get_reader(str(tmp_path / "PATIENT")) is read_volumes


def test_a_dropped_folder_of_scans_can_be_only_viewed(make_napari_viewer, qtbot, tiny_ct_task, tmp_path, monkeypatch):
    """The walkthrough dropped a folder of unlabelled scans to look at them: the only answers were make a task or
    Cancel, which opened nothing. "Only view the first 3" opens them as dropped files."""
    from napari_volseg._napari.reader import napari_get_reader
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.new_task import VIEW_ONLY, NewTaskDialog

    root = tmp_path / "MyLiver"
    _layout(tiny_ct_task, root)
    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    offered = []

    def view_only(dialog):
        from qtpy.QtWidgets import QPushButton

        offered.append([b.text() for b in dialog.findChildren(QPushButton)])
        return VIEW_ONLY

    monkeypatch.setattr(NewTaskDialog, "exec", view_only)
    assert napari_get_reader(str(root / "images"))([str(root / "images")]) == [(None,)]
    qtbot.waitUntil(lambda: len(viewer.layers) == 3 and not data.session.busy_loading(), timeout=60_000)
    assert "Only view the first 3" in offered[0]  # the folder holds 3
    assert sorted(layer.name for layer in viewer.layers) == sorted(
        p.name.split(".")[0] for p in (root / "images").iterdir()
    )
    assert data.session.task is None


def test_images_and_labels_dropped_together_offer_one_task(make_napari_viewer, tiny_ct_task, tmp_path, monkeypatch):
    """The walkthrough dropped MyHeart/images and MyHeart/labels together: two dialogs, the first making a task of
    the label files as scans ('labels-task', inside the labels folder) when OK was pressed."""
    from napari_volseg._napari.loading import session_for
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.new_task import NewTaskDialog, offer
    from napari_volseg.io.layouts import detect_layout

    root = tmp_path / "MyLiver"
    _layout(tiny_ct_task, root)
    layout = detect_layout(root / "labels")
    assert (layout.images, layout.labels, layout.name) == (root / "images", root / "labels", "MyLiver")
    viewer = make_napari_viewer()
    DataWidget(viewer)
    session = session_for(viewer)
    shown = []

    def answer(dialog):  # the second folder's offer comes while this dialog is open (napari's next reader call)
        shown.append((dialog.images.text(), dialog.labels.text()))
        offer(root / "labels", session)
        return False

    monkeypatch.setattr(NewTaskDialog, "exec", answer)
    offer(root / "images", session)
    assert shown == [(str(root / "images"), str(root / "labels"))]
