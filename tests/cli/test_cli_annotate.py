"""`volseg new-task` and `volseg finetune` exactly as issue 14 writes them, and their one-line errors."""

import shutil

import numpy as np
import pytest

from napari_volseg import cli
from napari_volseg.annotate.sparse import keep_slices
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.io import decathlon, nifti


def test_new_task_from_a_folder_of_scans_with_sparse_labels(annotate_task, tmp_path, capsys):
    images, labels = tmp_path / "scans", tmp_path / "masks"
    shutil.copytree(annotate_task / "imagesTs", images)
    for name in ("spleen_001.nii.gz", "spleen_002.nii.gz"):
        shutil.copy(annotate_task / "imagesTr" / name, images / name)
    labels.mkdir()
    label = nifti.load(annotate_task / "labelsTr" / "spleen_001.nii.gz", label=True)
    nifti.save_labels(keep_slices(label.data, 4), label.geometry, labels / "spleen_001.nii.gz")
    args = ["new-task", "--images", str(images), "--labels", str(labels), "--name", "MySpleen"]
    args += ["--modality", "CT", "--classes", "background,spleen", "--out", str(tmp_path / "Task60_Mine")]
    assert cli.main(args) == 0
    assert "1 labelled case(s) (1 sparse), 3 to annotate" in capsys.readouterr().out
    task = decathlon.load_task(tmp_path / "Task60_Mine")
    assert task.name == "MySpleen" and task.unlabelled == 255 and task.case("spleen_001").sparse
    assert cli.main(args) == 1  # the folder exists now: one line, nothing touched
    assert capsys.readouterr().err.startswith("volseg: error: ") and len(task.cases) == 1


def test_new_task_refuses_unknown_label_values(annotate_task, tmp_path, capsys):
    labels = tmp_path / "masks"
    labels.mkdir()
    label = nifti.load(annotate_task / "labelsTr" / "spleen_001.nii.gz", label=True)
    nifti.save_labels(np.full(label.data.shape, 9, np.uint8), label.geometry, labels / "spleen_001.nii.gz")
    args = ["new-task", "--images", str(annotate_task / "imagesTr"), "--labels", str(labels), "--name", "X"]
    args += ["--modality", "MRI", "--classes", "background,spleen", "--out", str(tmp_path / "X")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[9]" in err and not (tmp_path / "X").exists()


@pytest.mark.slow
def test_finetune_writes_a_new_checkpoint_from_the_given_one(annotate_task, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "v002.safetensors"
    args = ["finetune", "--model", str(tiny_checkpoint), "--data", str(annotate_task), "--minutes", "0.05"]
    assert cli.main(args + ["--out", str(out), "--device", "cpu"]) == 0
    assert "checkpoint" in capsys.readouterr().out
    child, parent = ckpt.load(out), ckpt.load(tiny_checkpoint)
    assert child.plan == parent.plan and child.step >= 1
    assert child.history[-1]["val_cases"].keys() == parent.history[-1]["val_cases"].keys()  # same validation cases
    assert cli.main(args + ["--out", str(tiny_checkpoint)]) == 1
    assert "name a new file" in capsys.readouterr().err
