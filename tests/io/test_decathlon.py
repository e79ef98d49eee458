import dataclasses
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from napari_volseg.config import TrainConfig
from napari_volseg.errors import GeometryMismatchError, LabelValueError, TaskFormatError
from napari_volseg.io import decathlon, nifti


def test_real_heart_task_lists_cases_without_reading_volumes(heart_dir, monkeypatch):
    def no_reads(*args, **kwargs):
        raise AssertionError("load_task must not read volumes")

    monkeypatch.setattr(nifti, "load", no_reads)
    task = decathlon.load_task(heart_dir)
    assert len(task.cases) == 15 and task.labels == {0: "background", 1: "left atrium"}
    assert task.modalities == {0: "MRI"} and task.kind == "mri" and task.num_classes == 2
    assert task.cases[0].id == "la_003" and task.cases[0].label_path.name == "la_003.nii.gz"


def test_case_loads_image_and_label_on_one_grid(heart_dir):
    image, label = decathlon.load_task(heart_dir).case("la_004").load()
    assert image.data.shape == label.data.shape and label.data.dtype == np.uint8
    assert set(np.unique(label.data)) == {0, 1}


def test_hippocampus_labels_named_and_float_label_files_load(hippocampus_dir):
    task = decathlon.load_task(hippocampus_dir)
    assert len(task.cases) == 200 and task.num_classes == 3
    for case in task.cases[:20]:
        _, label = case.load()
        assert set(np.unique(label.data)) <= {0, 1, 2}


def test_seeded_split_is_deterministic_and_disjoint(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    a = decathlon.training_split(task, TrainConfig(seed=3, val_cases=2))
    b = decathlon.training_split(task, TrainConfig(seed=3, val_cases=2))
    assert [c.id for c in a.val] == [c.id for c in b.val] and len(a.val) == 2 and len(a.train) == 4
    assert not {c.id for c in a.train} & {c.id for c in a.val}
    others = {
        tuple(c.id for c in decathlon.training_split(task, TrainConfig(seed=s, val_cases=2)).val) for s in range(10)
    }
    assert len(others) > 1


def test_held_out_test_cases_touch_neither_training_nor_validation(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    plain = decathlon.training_split(task, TrainConfig(seed=3, val_cases=2))
    honest = decathlon.training_split(task, TrainConfig(seed=3, val_cases=1, test_cases=2))
    test, val, train = ({c.id for c in part} for part in (honest.test, honest.val, honest.train))
    assert len(test) == 2 and len(val) == 1 and len(train) == 3 and not (test & val or test & train or val & train)
    assert test == {c.id for c in plain.val}  # the same shuffle: test cases come first, as validation did
    final = decathlon.training_split(task, TrainConfig(seed=3, val_cases=0, test_cases=2))
    assert {c.id for c in final.test} == test and not final.val and len(final.train) == 4
    one = dataclasses.replace(task, cases=task.cases[:1])
    assert [c.id for c in decathlon.training_split(one, TrainConfig()).train] == [task.cases[0].id]  # no validation
    with pytest.raises(TaskFormatError, match="none would train"):
        decathlon.training_split(task, TrainConfig(val_cases=2, test_cases=4))


SEED_REPORT = TrainConfig(split="seed-report")


def _mini_task(root, n=20, name="Heart"):
    root.mkdir(parents=True)
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    arr = np.zeros((4, 4, 4), np.uint8)
    training = []
    for i in range(n):
        for sub in ("imagesTr", "labelsTr"):
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(root / sub / f"c_{i:03d}.nii.gz"))
        training.append({"image": f"./imagesTr/c_{i:03d}.nii.gz", "label": f"./labelsTr/c_{i:03d}.nii.gz"})
    meta = {
        "name": name,
        "labels": {"0": "background", "1": "fg"},
        "modality": {"0": "MRI"},
        "training": training,
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root, meta


def test_seed_report_split(tmp_path, heart_dir):
    root, _ = _mini_task(tmp_path / "Task02_Heart", n=20)
    split = decathlon.training_split(decathlon.load_task(root), SEED_REPORT)
    assert [c.id for c in split.val] == ["c_016", "c_017", "c_018", "c_019"] and len(split.train) == 16
    with pytest.raises(TaskFormatError, match="needs 20 cases"):
        decathlon.training_split(decathlon.load_task(heart_dir), SEED_REPORT)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda root, meta: (root / "dataset.json").unlink(), "no dataset.json"),
        (lambda root, meta: (root / "dataset.json").write_text("{not json"), "not valid JSON"),
        (lambda root, meta: (root / "dataset.json").write_text("[1, 2]"), "JSON object"),
        (lambda root, meta: _rewrite(root, meta, image="../../etc/passwd"), "outside the task folder"),
        (lambda root, meta: _rewrite(root, meta, image="/etc/passwd"), "absolute"),
        (lambda root, meta: (root / "imagesTr" / "c_001.nii.gz").unlink(), "missing"),
        (lambda root, meta: _rewrite(root, meta, labels={"zero": "bg"}), "keys must be integers"),
    ],
    ids=["missing", "malformed", "not-object", "escape", "absolute", "missing-file", "bad-labels"],
)
def test_bad_task_folders_get_one_line_errors(tmp_path, mutate, message):
    root, meta = _mini_task(tmp_path / "Task", n=3)
    mutate(root, meta)
    with pytest.raises(TaskFormatError, match=message) as err:
        decathlon.load_task(root)
    assert "\n" not in str(err.value)


def _rewrite(root, meta, image=None, labels=None):
    if image is not None:
        meta["training"][0]["image"] = image
    if labels is not None:
        meta["labels"] = labels
    (root / "dataset.json").write_text(json.dumps(meta))


def test_image_label_shape_mismatch(tmp_path):
    root, _ = _mini_task(tmp_path / "Task", n=2)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 5), np.uint8), np.eye(4)), str(root / "labelsTr" / "c_000.nii.gz"))
    with pytest.raises(GeometryMismatchError, match="shape"):
        decathlon.load_task(root).cases[0].load()


def test_image_label_affine_mismatch(tmp_path):
    root, _ = _mini_task(tmp_path / "Task", n=2)
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), shifted), str(root / "labelsTr" / "c_000.nii.gz"))
    with pytest.raises(GeometryMismatchError, match="affines differ"):
        decathlon.load_task(root).cases[0].load()


def test_unnamed_label_values_are_refused(tmp_path):
    root, _ = _mini_task(tmp_path / "Task", n=2)
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(root / "labelsTr" / "c_000.nii.gz"))
    with pytest.raises(LabelValueError, match=r"\[3\] not named"):
        decathlon.load_task(root).cases[0].load()


def test_multimodal_task_loads_channels_and_checks_their_count(tmp_path):
    root, meta = _mini_task(tmp_path / "Task01", n=2)
    meta["modality"] = {"0": "FLAIR", "1": "T1w"}
    (root / "dataset.json").write_text(json.dumps(meta))
    nib.save(
        nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)),
        str(root / "imagesTr" / "c_000.nii.gz"),
    )
    image, label = decathlon.load_task(root).cases[0].load()
    assert image.data.shape == (2, 4, 4, 4) and label.data.shape == (4, 4, 4)
    with pytest.raises(TaskFormatError, match="1 channel"):
        decathlon.load_task(root).cases[1].load()


def test_test_cases_and_paths_with_spaces(tmp_path, tiny_ct_task):
    root = tmp_path / "my tasks" / "Tâsk 09"
    shutil.copytree(tiny_ct_task, root)
    task = decathlon.load_task(root)
    assert len(task.cases) == 6
    image, label = task.cases[0].load()
    assert image.data.shape == label.data.shape == (16, 48, 48)
