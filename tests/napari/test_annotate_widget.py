"""The Annotate widget and "New task from images…" in a real viewer (pytest-qt, under Xvfb)."""

import json
import os
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@pytest.fixture
def annotate(make_napari_viewer, annotate_task, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.loading import session_for
    from napari_volseg._napari.widgets import AnnotateWidget
    from napari_volseg.io import decathlon

    viewer = make_napari_viewer()
    widget = AnnotateWidget(viewer)
    session_for(viewer).set_task(decathlon.load_task(annotate_task))
    return viewer, widget


def _wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def _written(qtbot, widget):
    """An accept or undo written and the task reloaded by the session."""
    qtbot.waitUntil(lambda: widget.writer is None and not widget.session.busy_loading(), timeout=60_000)


def test_rank_opens_the_most_uncertain_case_and_accept_then_undo(
    annotate, qtbot, tiny_checkpoint, annotate_task, monkeypatch
):
    viewer, widget = annotate
    widget.session.set_checkpoint(tiny_checkpoint)
    assert widget.cases.rowCount() == 2 and widget.train_button.text() == "Fine-tune"
    widget.rank()
    _wait(qtbot, widget)  # ranking, then the top case's prediction
    qtbot.waitUntil(lambda: widget.case_id is not None and widget.worker is None, timeout=120_000)
    top = widget.ranking[0].case_id
    assert widget.case_id == top and widget.cases.item(0, 0).text() == top
    assert [r.score for r in widget.ranking] == sorted((r.score for r in widget.ranking), reverse=True)
    layer = viewer.layers[f"{top} annotation"]
    assert viewer.layers.selection.active is layer and layer.mode == "paint"
    corrected = np.zeros_like(np.asarray(layer.data))
    corrected[3:6, 10:20, 10:20] = 1  # what a brush would leave: 300 voxels on 3 slices
    layer.data = corrected
    changed = int((corrected != widget.suggested).sum())
    # unaccepted edits are never lost: opening another case (Data or Predict tab) is refused with one line
    from napari_volseg._napari import loading

    refused = []
    monkeypatch.setattr(loading, "notify_error", refused.append)
    other = widget.session.task.cases[0].id
    assert loading.open_case(widget.session, other) is None and f"{top} annotation" in viewer.layers
    assert refused == [
        f"{top} has annotation edits not yet accepted: Accept them (Annotate tab) or delete the layer "
        f"'{top} annotation' to discard them, then open another case"
    ]
    assert widget.accept() is not None  # written in a worker
    _written(qtbot, widget)
    assert widget.unsaved(other) is None  # accepted: switching cases loses nothing now
    assert widget.status.text().startswith(f"accepted {top}")  # not "correct ... then Accept" any more
    said = []
    monkeypatch.setattr("napari_volseg._napari.widgets.annotate.show_info", said.append)
    assert widget.accept() is None and said == [f"{top} is accepted already: nothing changed since"]
    stats = widget.last_edits
    assert stats.voxels == changed and stats.label_voxels == 300
    assert widget.edits_label.text().startswith(f"accepted {top}: edited {changed:,} voxels")
    label_file = annotate_task / "labelsTr" / f"{top}.nii.gz"
    assert label_file.is_file() and widget.cases.rowCount() == 1
    assert top in [c.id for c in widget.session.task.cases]
    widget.undo()
    _written(qtbot, widget)
    assert not label_file.exists() and widget.cases.rowCount() == 2
    # issue 26 item 6: the top line no longer reads "accepted ... open the next case" after the undo
    assert widget.status.text() == f"undid the accept of {top}: it is back among the cases to annotate"
    assert top in [c.id for c in widget.session.task.test_cases]


def test_sparse_annotation_from_scratch_then_train_from_annotations(annotate, qtbot, annotate_task):
    viewer, widget = annotate
    assert widget.train_button.text() == "Train from annotations"
    case_id = widget.session.task.test_cases[0].id
    viewer.dims.ndisplay = 3  # as Classify's test digits leave it
    widget.open_case(case_id, predict=False)
    qtbot.waitUntil(lambda: widget.case_id == case_id, timeout=60_000)  # suggested, then opened by the session
    layer = viewer.layers[f"{case_id} annotation"]
    assert (np.asarray(layer.data) == 255).all()
    assert viewer.dims.ndisplay == 2  # annotated slice by slice
    data = np.asarray(layer.data).copy()
    data[8, 20:30, 20:30] = 1
    layer.data = data
    viewer.dims.set_point(0, layer.data_to_world([8, 0, 0])[0])
    widget.finish_slice()
    assert set(np.unique(np.asarray(layer.data)[8])) == {0, 1} and (np.asarray(layer.data)[7] == 255).all()
    widget.accept()
    _written(qtbot, widget)
    stats = widget.last_edits
    assert stats.voxels == 48 * 48 and stats.slices == 1
    meta = json.loads((annotate_task / "dataset.json").read_text())
    assert meta["unlabelled"] == 255 and [e for e in meta["training"] if e.get("sparse")]
    assert widget.cases.rowCount() == 2  # a sparse case is still to annotate
    widget.minutes.setValue(0.1)
    widget.train()
    assert widget.stop_button.isEnabled()
    # trained, then the open case comes back as the new model's dense prediction
    qtbot.waitUntil(lambda: widget.worker is None and 255 not in np.asarray(layer.data), timeout=240_000)
    assert widget.session.checkpoint == annotate_task / "models" / "v001.safetensors"
    assert widget.versions.rowCount() == 1 and widget.train_button.text() == "Fine-tune"


def test_fine_tune_adds_a_version_and_the_user_can_switch_back(annotate, qtbot, tiny_checkpoint, annotate_task):
    _, widget = annotate
    first = annotate_task / "models" / "v001.safetensors"
    first.parent.mkdir()
    shutil.copy(tiny_checkpoint, first)
    widget.session.set_checkpoint(first)
    widget.minutes.setValue(0.1)
    widget.train()
    _wait(qtbot, widget, timeout=240_000)
    assert widget.session.checkpoint == annotate_task / "models" / "v002.safetensors"
    rows = [widget.versions.item(r, 0).text() for r in range(widget.versions.rowCount())]
    assert rows == ["v001", "v002 (in use)"] and widget.versions.item(0, 1).text() != "-"
    widget.versions.cellDoubleClicked.emit(0, 0)
    assert widget.session.checkpoint == first and widget.versions.item(0, 0).text() == "v001 (in use)"


def test_dropping_a_folder_of_scans_offers_a_new_task(make_napari_viewer, qtbot, annotate_task, tmp_path, monkeypatch):
    from napari_volseg._napari.reader import napari_get_reader
    from napari_volseg._napari.widgets import DataWidget
    from napari_volseg._napari.widgets.new_task import NewTaskDialog

    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    scans = tmp_path / "scans"
    shutil.copytree(annotate_task / "imagesTs", scans)
    offered = []

    def accept_dialog(dialog):
        offered.append(dialog.values())
        dialog.classes.setText("background,spleen")
        return True

    monkeypatch.setattr(NewTaskDialog, "exec", accept_dialog)
    reader = napari_get_reader(str(scans))
    assert reader([str(scans)]) == [(None,)]
    assert offered[0]["images"] == scans and offered[0]["out"] == tmp_path / "scans-task"
    assert offered[0]["modality"] == "AUTO"  # read from the scans, not a CT default that washes an MRI out
    qtbot.waitUntil(lambda: data.session.task is not None, timeout=60_000)
    assert data.session.task.name == "scans" and len(data.session.task.test_cases) == 2
    assert data.session.task.modalities.get(0) == "CT"  # the synthetic CT's air
    assert data.table.rowCount() == 2 and viewer.layers[0].name == data.session.task.test_cases[0].id


def test_the_status_says_what_to_do_and_idle_buttons_say_why(make_napari_viewer, qtbot, tiny_ct_task, monkeypatch):
    """No task: open one; a task with every case labelled: nothing to annotate, and the buttons that need a case are
    off, saying why; Finish slice and Paint unlabelled with no annotation open say so in one line."""
    from napari_volseg._napari.loading import session_for
    from napari_volseg._napari.widgets import AnnotateWidget
    from napari_volseg._napari.widgets import annotate as module
    from napari_volseg.io import decathlon

    viewer = make_napari_viewer()
    widget = AnnotateWidget(viewer)
    assert widget.status.text() == "open a task (Data tab)"
    task = decathlon.load_task(tiny_ct_task)
    session_for(viewer).set_task(task)
    assert widget.status.text().startswith(f"every case of {task.name} is labelled: nothing to annotate")
    said = []
    monkeypatch.setattr(module, "notify_error", said.append)
    all_labelled = f"every case of {task.name} is labelled: nothing to annotate (Data → New task from images…)"
    # nothing to annotate: the buttons that need a case are off and say why (each answered with the same error)
    for button in (widget.rank_button, widget.predict_button, widget.scratch_button):
        assert not button.isEnabled() and button.toolTip() == all_labelled
    # no annotation open: Finish slice, Paint unlabelled and Accept are off too, saying why (they pointed at the
    # Predict and Annotate-from-scratch buttons, themselves off); calling them still says it in one line
    for button in (widget.finish_button, widget.unlabelled_button, widget.accept_button):
        assert not button.isEnabled() and button.toolTip() == all_labelled
    assert not widget.undo_button.isEnabled() and widget.undo_button.toolTip() == "no accept to undo yet"
    widget.finish_slice()
    widget.paint_unlabelled()  # did nothing and said nothing, before
    assert said == ["no annotation open: Predict or Annotate from scratch first"] * 2


def test_without_a_model_rank_and_predict_are_off_and_the_status_offers_what_works(annotate, tiny_checkpoint):
    """Issue 26 item 6: with no model the status offered "Rank them" and Rank answered "no model yet"."""
    from napari_volseg._napari.widgets.annotate import NO_MODEL

    _, widget = annotate
    widget.session.set_checkpoint(None)
    assert "Rank" not in widget.status.text() and "Annotate from scratch" in widget.status.text()
    for button in (widget.rank_button, widget.predict_button):
        assert not button.isEnabled() and button.toolTip() == NO_MODEL
    assert widget.scratch_button.isEnabled() and widget.scratch_button.toolTip() == ""
    widget.session.set_checkpoint(tiny_checkpoint)
    assert widget.rank_button.isEnabled() and widget.predict_button.isEnabled()
    assert widget.status.text().endswith("Rank them, or double-click one")


def test_compare_scores_the_versions_on_the_same_cases(annotate, qtbot, tiny_checkpoint):
    """Issue 26 item 7: each version's figure on the same cases, not each on its own validation split."""
    _, widget = annotate
    widget.session.set_checkpoint(tiny_checkpoint)
    assert widget.versions.item(0, 1).text().endswith(" val") or widget.versions.item(0, 1).text() == "-"
    assert widget.models.compare() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.models.scores and widget.status.text().startswith("compared 1 version(s) on the same")
    dice = widget.versions.item(0, 1)
    assert float(dice.text()) == pytest.approx(widget.models.scores[tiny_checkpoint], abs=5e-4)
    assert "labelled case(s) no version trained on" in dice.toolTip()


def test_after_a_fine_tune_edits_are_kept_or_replaced_as_the_user_answers(
    annotate, qtbot, tiny_checkpoint, annotate_task, monkeypatch
):
    """Issue 26 item 7: with unaccepted edits, re-predicting the open case after a fine-tune was refused with "has
    annotation edits not yet accepted"; now it asks. No keeps the edits (and the new model in use); Yes replaces them
    with the new version's prediction."""
    from qtpy.QtWidgets import QMessageBox

    from napari_volseg import events as ev
    from napari_volseg.annotate import finetune

    viewer, widget = annotate
    models = annotate_task / "models"
    models.mkdir()
    shutil.copy(tiny_checkpoint, models / "v001.safetensors")
    widget.session.set_checkpoint(models / "v001.safetensors")
    case = widget.session.task.test_cases[0].id
    widget.predict(case)
    qtbot.waitUntil(lambda: widget.case_id == case and widget.worker is None, timeout=120_000)
    layer = viewer.layers[f"{case} annotation"]
    edited = np.asarray(layer.data).copy()
    edited[2:4, 5:15, 5:15] = 1
    layer.data = edited

    class Version:  # the fine-tune's run, ended at once: the next version is a copy of the first
        def __init__(self, checkpoint, task, out, minutes):
            self.out = out

        def run(self):
            shutil.copy(tiny_checkpoint, self.out)
            yield ev.Finished(1, 0.5, self.out, None, False, 1.0)

        def stop(self):
            pass

    monkeypatch.setattr(finetune, "next_version_trainer", Version)
    answers, asked = [QMessageBox.No, QMessageBox.Yes], []
    monkeypatch.setattr(QMessageBox, "question", lambda p, t, text, *a: (asked.append(text), answers.pop(0))[1])
    widget.models.train()
    qtbot.waitUntil(lambda: widget.session.checkpoint == models / "v002.safetensors", timeout=60_000)
    qtbot.waitUntil(lambda: widget.worker is None and bool(asked), timeout=60_000)
    assert f"Re-predict {case} with it?" in asked[0]
    np.testing.assert_array_equal(np.asarray(layer.data), edited)  # No: the edits stay
    assert widget.status.text() == f"v002 in use; {case} keeps your edits (Predict re-predicts it)"

    widget.models.train()  # Yes: the open case comes back predicted by v003
    qtbot.waitUntil(lambda: widget.session.checkpoint == models / "v003.safetensors", timeout=60_000)
    qtbot.waitUntil(lambda: len(asked) == 2 and widget.worker is None and widget.suggested is not None, timeout=60_000)
    qtbot.waitUntil(lambda: np.array_equal(np.asarray(viewer.layers[f"{case} annotation"].data), widget.suggested))
    assert not np.array_equal(np.asarray(viewer.layers[f"{case} annotation"].data), edited)


def test_a_model_of_other_classes_is_refused_before_it_ranks(annotate, monkeypatch):
    """The walkthrough ranked and corrected with msd-hippocampus (anterior, posterior) on a one-class task: every
    correction was then refused at Accept ("the label holds value(s) [2]"). Rank and Predict now say so first."""
    from napari_volseg._napari.widgets import annotate as annotate_module
    from napari_volseg.zoo import registry

    _, widget = annotate
    said = []
    monkeypatch.setattr(annotate_module, "notify_error", lambda message: said.append(str(message)))
    widget.session.set_checkpoint(registry.resolve("msd-hippocampus"))
    assert widget.rank() is None and widget.predict(widget.session.task.test_cases[0].id) is None
    assert len(said) == 2 and said[0] == said[1]
    assert said[0].startswith("the model segments 2 structure(s) (Anterior, Posterior) in 1-channel scans; task ")
    assert said[0].endswith(
        "its predictions cannot be this task's labels (make the task with the model's classes, "
        "or annotate from scratch)"
    )
    assert widget.worker is None


def test_the_model_the_loop_started_from_stays_listed_after_a_fine_tune(
    annotate, qtbot, tiny_checkpoint, annotate_task, monkeypatch
):
    """The walkthrough fine-tuned msd-hippocampus: v001 was listed alone, the shipped model gone from the list
    (no double-click back to it)."""
    from napari_volseg import events as ev
    from napari_volseg.annotate import finetune

    _, widget = annotate

    class Version:
        def __init__(self, checkpoint, task, out, minutes):
            self.out = out

        def run(self):
            self.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tiny_checkpoint, self.out)
            yield ev.Finished(1, 0.5, self.out, None, False, 1.0)

        def stop(self):
            pass

    monkeypatch.setattr(finetune, "next_version_trainer", Version)
    widget.session.set_checkpoint(tiny_checkpoint)  # a model from outside the task's models folder
    widget.models.train()
    qtbot.waitUntil(lambda: widget.session.checkpoint == annotate_task / "models" / "v001.safetensors", timeout=60_000)
    _wait(qtbot, widget)
    rows = [widget.versions.item(r, 0).text() for r in range(widget.versions.rowCount())]
    assert rows == [tiny_checkpoint.stem, "v001 (in use)"]
    widget.versions.cellDoubleClicked.emit(0, 0)
    assert widget.session.checkpoint == tiny_checkpoint
