"""Issue 26 item 3: the layouts people have, found and proposed: images/ beside labels/ (the parent dropped, or
images/ itself), nnU-Net's imagesTr/ + labelsTr/ with _0000 names and its dataset.json, and scans with *_seg labels
beside them in one folder; the classes proposed from the values the labels hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_volseg.errors import TaskFormatError
from napari_volseg.io import decathlon, nifti, volumes
from napari_volseg.io.layouts import detect_layout, propose, propose_classes
from napari_volseg.io.new_task import write_task_from_files


def _write(tiny_ct_task, images, labels, image_name="{}.nii.gz", label_name="{}.nii.gz", cases=3, labelled=2):
    """``cases`` scans into ``images``, the first ``labelled`` labels into ``labels`` (the second one's value 2)."""
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    task = decathlon.load_task(tiny_ct_task)
    for i, case in enumerate(task.cases[:cases]):
        image, label = case.load()
        nifti.save_image(image.data, image.geometry, images / image_name.format(f"case_{i}"))
        if i < labelled:
            data = label.data * (2 if i == 1 else 1)
            nifti.save_labels(data.astype(np.uint8), image.geometry, labels / label_name.format(f"case_{i}"))


def _task_from(layout, out, classes=None):
    classes = classes or propose_classes(layout.images, layout.labels)
    folder = write_task_from_files(
        layout.images, out, name=layout.name, modality=layout.modality or "auto", classes=classes, labels=layout.labels
    )
    return decathlon.load_task(folder)


def test_a_folder_holding_images_and_labels_is_one_task_named_after_it(tiny_ct_task, tmp_path):
    root = tmp_path / "MyLiver"
    _write(tiny_ct_task, root / "images", root / "labels")
    layout = detect_layout(root)
    assert (layout.images, layout.labels, layout.name) == (root / "images", root / "labels", "MyLiver")
    assert propose_classes(layout.images, layout.labels) == "background,label1,label2"  # the labels hold 2
    # one file marks its spleen 1, the other 2: two classes as read, and said (it was silent)
    assert propose(layout.images, layout.labels)[1] == (
        "the label files mark their foreground with different values (1 hold 1, 1 hold 2 of 2 files): as read, each "
        "value is a class of its own; if they mark one structure, give them one value first"
    )
    task = _task_from(layout, tmp_path / "out")
    assert task.name == "MyLiver" and len(task.cases) == 2 and len(task.test_cases) == 1
    assert task.labels == {0: "background", 1: "label1", 2: "label2"}
    # dropping images/ itself finds labels/ beside it, and names the task after the parent, not "images"
    beside = detect_layout(root / "images")
    assert (beside.images, beside.labels, beside.name) == (root / "images", root / "labels", "MyLiver")


def test_nnunet_imagestr_labelstr_with_channel_suffix_and_its_dataset_json(tiny_ct_task, tmp_path):
    root = tmp_path / "Dataset501_Spleen"
    _write(tiny_ct_task, root / "imagesTr", root / "labelsTr", image_name="{}_0000.nii.gz")
    meta = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "spleen": 1, "vessel": 2},
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    layout = detect_layout(root)
    assert (
        layout.kind.startswith("nnU-Net") and layout.classes == "background,spleen,vessel" and layout.modality == "CT"
    )
    task = _task_from(layout, tmp_path / "out", layout.classes)
    assert sorted(c.id for c in task.cases) == ["case_0", "case_1"]  # case_0_0000.nii.gz is case_0
    assert task.labels[2] == "vessel"


def test_scans_with_seg_labels_beside_them_in_one_folder(tiny_ct_task, tmp_path):
    flat = tmp_path / "flat"
    _write(tiny_ct_task, flat, flat, label_name="{}_seg.nii.gz")
    layout = detect_layout(flat)
    assert layout.images == layout.labels == flat and layout.kind == "scans with *_seg labels"
    task = _task_from(layout, tmp_path / "out")
    assert sorted(c.id for c in task.cases) == ["case_0", "case_1"] and [c.id for c in task.test_cases] == ["case_2"]
    truth = volumes.read(flat / "case_1_seg.nii.gz", label=True).data
    np.testing.assert_array_equal(task.case("case_1").load_label().data, truth)


def test_a_folder_of_scans_alone_and_folders_without_scans(tiny_ct_task, tmp_path):
    scans = tmp_path / "scans"
    _write(tiny_ct_task, scans, tmp_path / "unused", labelled=0)
    layout = detect_layout(scans)
    assert layout.labels is None and layout.kind == "scans" and propose_classes(scans, None) == "background,foreground"
    (tmp_path / "empty").mkdir()
    assert detect_layout(tmp_path / "empty") is None and detect_layout(tmp_path / "missing") is None


def test_messages_name_no_command_line_flag(tiny_ct_task, tmp_path):
    """The dialog shows these: "the task needs a name (--name)" named a CLI flag in the GUI."""
    scans = tmp_path / "scans"
    _write(tiny_ct_task, scans, tmp_path / "l", labelled=0)
    for kwargs in ({"name": " ", "classes": "bg,fg"}, {"name": "T", "classes": "bg"}, {"name": "T", "classes": "a,a"}):
        with pytest.raises(TaskFormatError) as caught:
            write_task_from_files(scans, tmp_path / "T", modality="CT", **kwargs)
        assert "--" not in str(caught.value)


def test_volseg_new_task_finds_the_layout_and_auto_classes(tiny_ct_task, tmp_path, capsys):
    from napari_volseg.cli import main

    root = tmp_path / "Mine"
    _write(tiny_ct_task, root / "images", root / "labels")
    args = ["new-task", "--images", str(root), "--name", "Mine", "--modality", "auto", "--classes", "auto"]
    assert main([*args, "--out", str(tmp_path / "T")]) == 0
    err = capsys.readouterr().err
    assert "found images/ + labels/" in err and "classes: background,label1,label2" in err
    assert "warning: the label files mark their foreground with different values (1 hold 1, 1 hold 2" in err
    task = decathlon.load_task(tmp_path / "T")
    assert len(task.cases) == 2 and task.labels[2] == "label2"


def test_label_files_sharing_a_value_need_no_note(tiny_ct_task, tmp_path):
    """A file with classes 1 and 2 beside one with class 1 only is an ordinary multi-class task: no note."""
    root = tmp_path / "Mixed"
    _write(tiny_ct_task, root / "images", root / "labels")
    first = root / "labels" / sorted(p.name for p in (root / "labels").iterdir())[0]
    volume = nifti.load(first)
    data = volume.data.astype(np.uint8)
    data[0, :2, :2] = 2  # case_0 now holds 1 and 2; case_1 holds 2
    nifti.save_labels(data, volume.geometry, first)
    assert propose(root / "images", root / "labels") == ("background,label1,label2", "")
