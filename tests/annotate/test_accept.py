"""Accept a corrected label into the task (with backup), undo it, and the edit statistics shown after."""

import json

import numpy as np
import pytest

from napari_volseg.annotate.accept import accept, undo
from napari_volseg.annotate.edits import edit_stats
from napari_volseg.errors import GeometryMismatchError, LabelValueError
from napari_volseg.io import decathlon, nifti


def _meta(root):
    return json.loads((root / "dataset.json").read_text())


def test_accept_moves_an_unlabelled_case_into_training_in_the_scans_geometry(annotate_task):
    task = decathlon.load_task(annotate_task)
    case = task.test_cases[0]
    image = case.load_image()
    label = np.zeros(image.data.shape, np.uint8)
    label[4:8, 10:20, 12:30] = 1
    done = accept(task, case.id, label)
    assert done.backup is None and done.label_path == annotate_task / "labelsTr" / f"{case.id}.nii.gz"
    reloaded = decathlon.load_task(annotate_task)
    assert [c.id for c in reloaded.test_cases] == [task.test_cases[1].id]
    moved = reloaded.case(case.id)
    assert moved in reloaded.cases and not moved.sparse
    back_image, back_label = moved.load()  # loads on the scan's grid: shape and affine checked
    np.testing.assert_array_equal(back_label.data, label)
    assert back_label.geometry.same_grid(image.geometry)
    meta = _meta(annotate_task)
    assert meta["numTraining"] == 5 and meta["numTest"] == 1
    assert not list(annotate_task.glob("*.tmp")) and not list(annotate_task.glob(".*.tmp"))


def test_accepting_over_a_label_keeps_a_backup_and_undo_restores_both_files(annotate_task):
    task = decathlon.load_task(annotate_task)
    case = task.cases[0]
    original_bytes = case.label_path.read_bytes()
    before_meta = _meta(annotate_task)
    truth = case.load_label().data
    corrected = truth.copy()
    corrected[truth.shape[0] // 2] = 0
    done = accept(task, case.id, corrected)
    assert done.backup is not None and done.backup.read_bytes() == original_bytes
    assert done.backup.parent == annotate_task / "backups" and done.backup.name.endswith(".nii.gz")
    np.testing.assert_array_equal(nifti.load(case.label_path, label=True).data, corrected)
    undo(annotate_task, done)
    assert case.label_path.read_bytes() == original_bytes and _meta(annotate_task) == before_meta


def test_undo_of_a_new_label_removes_it_and_the_case_is_unlabelled_again(annotate_task):
    task = decathlon.load_task(annotate_task)
    case = task.test_cases[1]
    done = accept(task, case.id, np.zeros(case.geometry().shape_zyx, np.uint8))
    undo(annotate_task, done)
    assert not done.label_path.exists()
    assert case.id in [c.id for c in decathlon.load_task(annotate_task).test_cases]


def test_a_sparse_label_is_marked_sparse_and_declares_the_unlabelled_value(annotate_task):
    meta = _meta(annotate_task)
    assert "unlabelled" not in meta  # the synthetic task declares none
    task = decathlon.load_task(annotate_task)
    case = task.test_cases[0]
    label = np.full(case.geometry().shape_zyx, 255, np.uint8)
    label[5] = 0
    label[5, 10:20, 10:20] = 1
    accept(task, case.id, label)
    reloaded = decathlon.load_task(annotate_task)
    assert reloaded.unlabelled == 255 and reloaded.case(case.id).sparse
    assert set(np.unique(reloaded.case(case.id).load_label().data)) == {0, 1, 255}


def test_accept_refuses_wrong_shapes_and_unknown_values_and_writes_nothing(annotate_task):
    task = decathlon.load_task(annotate_task)
    case = task.test_cases[0]
    before = _meta(annotate_task)
    with pytest.raises(GeometryMismatchError):
        accept(task, case.id, np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(LabelValueError, match=r"\[7\]"):
        accept(task, case.id, np.full(case.geometry().shape_zyx, 7, np.uint8))
    assert _meta(annotate_task) == before and not (annotate_task / "labelsTr" / f"{case.id}.nii.gz").exists()


def test_edit_statistics_count_voxels_slices_and_share_of_the_final_label():
    before = np.zeros((10, 8, 8), np.uint8)
    before[2:5, 2:6, 2:6] = 1  # 48 voxels
    after = before.copy()
    after[4] = 0  # 16 removed on slice 4
    after[6, 0, 0] = 1  # 1 added on slice 6
    after[8] = 255  # unlabelled: not an edit
    stats = edit_stats(before, after, unlabelled=255)
    assert (stats.voxels, stats.slices, stats.slices_total, stats.label_voxels) == (17, 2, 10, 33)
    assert stats.share == pytest.approx(17 / 33)
    assert stats.summary() == "edited 17 voxels on 2 of 10 slices (51.5% of the final label)"
    assert edit_stats(before, before).voxels == 0


def test_the_next_version_is_numbered_past_a_stopped_runs_last_weights(tmp_path):
    """A fine-tune stopped before its first validation leaves v002.last.safetensors as the model in use; the next
    fine-tune must not be v002 (its own last weights would overwrite the model in use)."""
    from napari_volseg.annotate import versions

    (tmp_path / "v001.safetensors").write_bytes(b"")
    (tmp_path / "v002.last.safetensors").write_bytes(b"")
    assert versions.next_version_path(tmp_path).name == "v003.safetensors"
    (tmp_path / "v004.locator.last.safetensors").write_bytes(b"")
    assert versions.next_version_path(tmp_path).name == "v005.safetensors"


def test_an_undone_accept_says_when_the_model_in_use_trained_on_the_case(tiny_checkpoint):
    """The walkthrough undid an accept after fine-tuning on it: v001, trained on the undone case, stayed in use
    without a word."""
    from napari_volseg.annotate.accept import undo_report
    from napari_volseg.engine.provenance import Provenance

    trained = Provenance.read(tiny_checkpoint)
    case = sorted(trained.train_cases)[0]
    assert undo_report(case, tiny_checkpoint, trained.task) == (
        f"undid the accept of {case}: it is back among the cases to annotate; {tiny_checkpoint.stem}, in use, "
        "trained on it: double-click an earlier version to go back"
    )
    assert undo_report("other", tiny_checkpoint, trained.task) == (
        "undid the accept of other: it is back among the cases to annotate"
    )
    assert undo_report(case, None, trained.task).endswith("back among the cases to annotate")
