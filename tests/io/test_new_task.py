"""A task from your own files: layout, links, labels matched by name, and bad input refused whole."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from napari_volseg.errors import GeometryMismatchError, LabelValueError, OutputError, TaskFormatError
from napari_volseg.io import decathlon, nifti
from napari_volseg.io.new_task import write_task_from_files


@pytest.fixture
def own_files(tiny_ct_task, tmp_path):
    """Four scans in one folder (two as .nii, one in LPS order) and labels for two of them."""
    images, labels = tmp_path / "scans", tmp_path / "masks"
    images.mkdir()
    labels.mkdir()
    task = decathlon.load_task(tiny_ct_task)
    for i, case in enumerate(task.cases[:4]):
        suffix = ".nii" if i % 2 else ".nii.gz"
        image, label = case.load()
        geometry = image.geometry if i != 2 else nifti.geometry_from_spacing(image.data.shape, image.spacing)
        nifti.save_image(image.data, geometry, images / f"scan {i}{suffix}")
        if i < 2:
            nifti.save_labels(label.data, geometry, labels / f"scan {i}.nii.gz")
    return images, labels


def test_new_task_writes_an_msd_folder_that_loads(own_files, tmp_path):
    images, labels = own_files
    out = write_task_from_files(
        images, tmp_path / "Task50_Mine", name="Mine", modality="ct", classes="background,spleen", labels=labels
    )
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["modality"] == {"0": "CT"} and meta["labels"] == {"0": "background", "1": "spleen"}
    assert meta["unlabelled"] == 255 and meta["numTraining"] == 2 and meta["numTest"] == 2
    task = decathlon.load_task(out)
    assert [c.id for c in task.cases] == ["scan 0", "scan 1"] and [c.id for c in task.test_cases] == [
        "scan 2",
        "scan 3",
    ]
    assert task.case("scan 1").image_path.name == "scan 1.nii"  # own suffix kept
    assert (out / "imagesTs" / "scan 2.nii.gz").stat().st_ino == (images / "scan 2.nii.gz").stat().st_ino  # linked
    image, label = task.case("scan 0").load()
    assert image.data.shape == label.data.shape
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_sparse_labels_are_marked_in_the_new_task(own_files, tmp_path):
    images, labels = own_files
    label = nifti.load(labels / "scan 0.nii.gz", label=True)
    data = label.data.copy()
    data[::2] = 255
    nifti.save_labels(data, label.geometry, labels / "scan 0.nii.gz")
    out = write_task_from_files(images, tmp_path / "T", name="T", modality="CT", classes="bg,spleen", labels=labels)
    task = decathlon.load_task(out)
    assert task.case("scan 0").sparse and not task.case("scan 1").sparse


@pytest.mark.parametrize(
    "spoil, error, match",
    [
        ("orphan", TaskFormatError, "has no image"),
        ("value", LabelValueError, r"\[3\]"),
        ("shape", GeometryMismatchError, "shape"),
    ],
)
def test_bad_input_is_one_error_and_nothing_is_written(own_files, tmp_path, spoil, error, match):
    images, labels = own_files
    if spoil == "orphan":
        shutil.copy(labels / "scan 0.nii.gz", labels / "lonely.nii.gz")
    elif spoil == "value":
        label = nifti.load(labels / "scan 1.nii.gz", label=True)
        nifti.save_labels(np.full(label.data.shape, 3, np.uint8), label.geometry, labels / "scan 1.nii.gz")
    else:
        nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), str(labels / "scan 0.nii.gz"))
    with pytest.raises(error, match=match):
        write_task_from_files(images, tmp_path / "T", name="T", modality="CT", classes="bg,fg", labels=labels)
    assert not (tmp_path / "T").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_out_must_be_new_and_classes_well_formed(own_files, tmp_path):
    images, _ = own_files
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(TaskFormatError, match="already exists"):
        write_task_from_files(images, tmp_path / "taken", name="T", modality="CT", classes="bg,fg")
    with pytest.raises(TaskFormatError, match="two comma-separated"):
        write_task_from_files(images, tmp_path / "T", name="T", modality="CT", classes="spleen")
    with pytest.raises(TaskFormatError, match="CT, MRI or auto"):
        write_task_from_files(images, tmp_path / "T", name="T", modality="PET", classes="bg,fg")


def test_a_symlinked_scan_is_linked_as_the_file_itself(own_files, tmp_path):
    images, _ = own_files
    real = tmp_path / "elsewhere.nii.gz"
    shutil.move(images / "scan 0.nii.gz", real)
    (images / "scan 0.nii.gz").symlink_to(real)
    out = write_task_from_files(images, tmp_path / "T", name="T", modality="CT", classes="bg,fg")
    copied = out / "imagesTs" / "scan 0.nii.gz"
    assert not copied.is_symlink() and copied.stat().st_ino == real.stat().st_ino
    assert decathlon.load_task(out).case("scan 0").load_image().data.ndim == 3


def test_an_unwritable_destination_is_one_line_before_any_scan_is_read(own_files, unwritable_dir, monkeypatch):
    images, labels = own_files
    monkeypatch.setattr(nifti, "read_geometry", lambda *a: pytest.fail("read a scan before checking the destination"))
    with pytest.raises(OutputError, match="no permission"):
        write_task_from_files(
            images, unwritable_dir / "Task50_Mine", name="Mine", modality="CT", classes="background,spleen"
        )
    assert list(unwritable_dir.iterdir()) == []


def test_auto_modality_is_read_from_the_first_scan(own_files, tmp_path):
    """CT holds air near -1000 HU; an MRI has nothing that low (a guessed CT window washed an MRI out)."""
    from napari_volseg.io.new_task import guess_modality

    images, _ = own_files
    out = write_task_from_files(images, tmp_path / "T", name="T", modality="auto", classes="bg,fg")
    assert json.loads((out / "dataset.json").read_text())["modality"] == {"0": "CT"}
    mri = tmp_path / "mri"
    mri.mkdir()
    scan = nifti.load(images / "scan 0.nii.gz")
    nifti.save_image((scan.data - scan.data.min()).astype(np.float32) * 2.5, scan.geometry, mri / "head.nii.gz")
    assert guess_modality(mri / "head.nii.gz") == "MRI"
    out = write_task_from_files(mri, tmp_path / "M", name="M", modality="AUTO", classes="bg,fg")
    assert json.loads((out / "dataset.json").read_text())["modality"] == {"0": "MRI"}
