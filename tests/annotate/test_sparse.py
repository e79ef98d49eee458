"""Sparse labels end to end: dataset.json declaration, label checks, split, plan grid, losses, patches, training."""

import json

import numpy as np
import pytest
import torch
from conftest import quick_preset

from napari_volseg import events as ev
from napari_volseg import losses, preprocess
from napari_volseg.annotate.sparse import finish_slice, keep_slices
from napari_volseg.config import TrainConfig
from napari_volseg.engine.patches import sample_patch, train_case
from napari_volseg.engine.trainer import Trainer
from napari_volseg.errors import LabelValueError, TaskFormatError
from napari_volseg.io import decathlon, nifti
from napari_volseg.planning import Plan


def sparsify(root, case_ids, every=4):
    """Keep every ``every``-th slice of these cases' labels, mark them sparse, declare 255."""
    meta = json.loads((root / "dataset.json").read_text())
    meta["unlabelled"] = 255
    for entry in meta["training"]:
        path = root / entry["label"]
        if decathlon.case_id_of(path) in case_ids:
            label = nifti.load(path, label=True)
            nifti.save_labels(keep_slices(label.data, every), label.geometry, path)
            entry["sparse"] = True
    decathlon.write_dataset_json(root, meta)
    return decathlon.load_task(root)


def test_declared_unlabelled_value_loads_and_nothing_else_does(annotate_task):
    task = sparsify(annotate_task, {"spleen_001"})
    assert task.unlabelled == 255 and task.case("spleen_001").sparse and not task.case("spleen_002").sparse
    assert 255 in task.case("spleen_001").load_label().data
    meta = json.loads((annotate_task / "dataset.json").read_text())
    meta.pop("unlabelled")
    for entry in meta["training"]:
        entry.pop("sparse", None)
    decathlon.write_dataset_json(annotate_task, meta)
    undeclared = decathlon.load_task(annotate_task)
    with pytest.raises(LabelValueError, match=r"\[255\]"):
        undeclared.case("spleen_001").load_label()
    meta["unlabelled"] = 1  # a class value cannot mean unlabelled
    decathlon.write_dataset_json(annotate_task, meta)
    with pytest.raises(TaskFormatError, match="unlabelled"):
        decathlon.load_task(annotate_task)


def test_sparse_cases_never_validate_or_test(annotate_task):
    task = sparsify(annotate_task, {"spleen_001", "spleen_002", "spleen_003"})
    for seed in range(5):
        split = decathlon.training_split(task, TrainConfig(seed=seed, val_cases=1))
        assert [c.id for c in split.val] == ["spleen_004"] and len(split.train) == 3
    default = decathlon.training_split(task, TrainConfig())  # a fifth of 4 rounds to 1, the one dense case
    assert [c.id for c in default.val] == ["spleen_004"]
    tested = decathlon.training_split(task, TrainConfig(val_cases=0, test_cases=1))
    assert [c.id for c in tested.test] == ["spleen_004"] and tested.val == []
    with pytest.raises(TaskFormatError, match="only 1 of 4 are fully labelled"):
        decathlon.training_split(task, TrainConfig(val_cases=1, test_cases=1))
    all_sparse = sparsify(annotate_task, {"spleen_004"})
    split = decathlon.training_split(all_sparse, TrainConfig())
    assert split.val == [] and len(split.train) == 4


def test_unlabelled_voxels_need_a_sparse_entry(annotate_task):
    task = sparsify(annotate_task, {"spleen_001"})
    meta = json.loads((annotate_task / "dataset.json").read_text())
    next(e for e in meta["training"] if "spleen_001" in e["label"]).pop("sparse")
    decathlon.write_dataset_json(annotate_task, meta)
    with pytest.raises(LabelValueError, match='"sparse": true'):
        decathlon.load_task(annotate_task).case("spleen_001").load_label()
    assert task.case("spleen_002").load_label() is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unlabelled": "255"}, "whole number"),
        ({"unlabelled": True}, "whole number"),
        ({"unlabelled": 70000}, "whole number"),
        ({"unlabelled": 300, "labels": {"0": "background", "255": "organ"}}, "below 255"),
        ({"sparse": "yes"}, "true or false"),
        ({"sparse": True, "unlabelled": None}, "declares no 'unlabelled'"),
    ],
)
def test_bad_sparse_declarations_are_one_line(annotate_task, change, message):
    meta = json.loads((annotate_task / "dataset.json").read_text())
    meta["unlabelled"] = 255
    for key, value in change.items():
        if key == "sparse":
            meta["training"][0]["sparse"] = value
        elif value is None:
            meta.pop(key)
        else:
            meta[key] = value
    decathlon.write_dataset_json(annotate_task, meta)
    with pytest.raises(TaskFormatError, match=message):
        decathlon.load_task(annotate_task)


def test_a_single_annotated_slice_survives_a_coarser_plan_grid():
    label = np.full((32, 8, 8), 255, np.uint8)
    label[9] = 0
    label[9, 2:6, 2:6] = 1
    geometry = nifti.geometry_from_spacing((32, 8, 8), (1.0, 1.0, 1.0))
    image = nifti.Volume(np.random.default_rng(0).normal(size=(32, 8, 8)).astype(np.float32), geometry)
    plan = Plan(target_spacing=(4.0, 1.0, 1.0), crop=False)
    prepared = preprocess.apply(plan, image, nifti.Volume(label, geometry), unlabelled=255)
    assert prepared.label.shape == (8, 8, 8)
    annotated = np.nonzero((prepared.label != preprocess.UNLABELLED).any(axis=(1, 2)))[0]
    assert list(annotated) == [2] and prepared.label[2, 3, 3] == 1 and prepared.label[2, 0, 0] == 0


@pytest.mark.parametrize("name", ["ce", "dice", "dicece"])
def test_losses_ignore_unlabelled_voxels_in_dice_and_ce(name):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 6, 6, generator=gen)
    target = torch.randint(0, 2, (2, 1, 4, 6, 6), generator=gen)
    sparse = target.clone()
    sparse[:, :, 1:3] = preprocess.UNLABELLED
    keep = (sparse != preprocess.UNLABELLED)[:, 0]
    # the same loss on only the annotated voxels, laid out as one long batch of one
    flat_logits = logits.permute(1, 0, 2, 3, 4)[:, keep].reshape(1, 2, -1, 1, 1)
    flat_target = target[:, 0][keep].reshape(1, 1, -1, 1, 1)
    loss = losses.make_loss(name)
    assert float(loss(logits, sparse)) == pytest.approx(float(loss(flat_logits, flat_target)), rel=1e-5)
    assert float(loss(logits, sparse)) != pytest.approx(float(loss(logits, target)), rel=1e-3)


def test_patches_of_a_sparse_case_hold_annotation_and_no_unlabelled_class():
    label = np.full((40, 40, 40), preprocess.UNLABELLED, np.uint8)
    label[30] = 0
    label[30, 5:10, 5:10] = 1
    prepared = preprocess.Prepared(np.zeros((1, 40, 40, 40), np.float32), label, ((0, 40),) * 3, (40, 40, 40))
    case = train_case("c", prepared, np.random.default_rng(0))
    assert sorted(case.foreground) == [1] and case.annotated is not None
    rng = np.random.default_rng(1)
    for _ in range(20):
        _, patch = sample_patch(case, (8, 8, 8), rng, foreground=False)
        assert (patch != preprocess.UNLABELLED).any()


def test_finish_slice_marks_the_rest_of_a_slice_background():
    label = np.full((3, 4, 4), 255, np.uint8)
    label[1, 0, 0] = 1
    assert finish_slice(label, 1, 255) == 15
    assert label[1, 0, 0] == 1 and (label[1] != 255).all() and (label[0] == 255).all()


def test_training_on_sparse_labels_runs_and_validates_on_dense_cases(annotate_task, tmp_path):
    task = sparsify(annotate_task, {"spleen_001", "spleen_002", "spleen_003"}, every=4)
    preset = quick_preset(epochs=1, iterations_per_epoch=4, val_every=1, val_cases=1)
    events = list(Trainer(task, preset, tmp_path / "m.safetensors", cache_root=tmp_path / "cache").run())
    assert not [e for e in events if isinstance(e, ev.Failed)], events[-1]
    started = next(e for e in events if isinstance(e, ev.Started))
    assert started.val_cases == ["spleen_004"] and len(started.train_cases) == 3
    assert all(np.isfinite(e.loss) for e in events if isinstance(e, ev.Step))
