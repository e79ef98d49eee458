"""Coarse-to-fine cascade: region-of-interest boxes, box-cropped plans and caches, the two-stage trainer."""

import dataclasses

import numpy as np
import pytest
from conftest import quick_preset

from napari_volseg import preprocess
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import events as ev
from napari_volseg.engine.infer import Predictor
from napari_volseg.engine.train import Trainer
from napari_volseg.io import decathlon, nifti


def test_roi_box_grows_by_margin_and_ignores_small_strays():
    mask = np.zeros((40, 50, 60), bool)
    mask[10:20, 20:30, 30:40] = True  # the organ
    mask[1, 1, 1] = True  # a stray false positive far away
    box = preprocess.roi_box(mask, (2.0, 1.0, 1.0), margin_mm=4.0)
    assert box == ((8, 22), (16, 34), (26, 44))
    # clipped to the volume
    assert preprocess.roi_box(mask, (2.0, 1.0, 1.0), margin_mm=100.0) == ((0, 40), (0, 50), (0, 60))
    assert preprocess.roi_box(np.zeros((4, 4, 4), bool), (1, 1, 1), 5.0) is None


def test_two_organs_of_similar_size_are_both_kept():
    mask = np.zeros((20, 20, 60), bool)
    mask[5:10, 5:10, 2:8] = True
    mask[5:10, 5:10, 50:55] = True
    assert preprocess.roi_box(mask, (1.0, 1.0, 1.0), 0.0) == ((5, 10), (5, 10), (2, 55))


def test_apply_with_box_inverts_to_the_source_grid(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    case = task.cases[0]
    image, label = case.load()
    plan = preprocess.plan_for_task(task)
    box = ((2, 12), (10, 40), (5, 45))
    prepared = preprocess.apply(plan, image, label, box=box)
    assert prepared.box == box
    probs = np.zeros((2,) + prepared.image.shape[1:], np.float32)
    probs[1] = 1.0
    labels = preprocess.invert(probs, prepared)
    assert labels.shape == image.data.shape
    inside = tuple(slice(a, b) for a, b in box)
    assert labels[inside].all() and labels.sum() == np.prod([b - a for a, b in box])
    # boxes reaching past the volume are clipped, not an error
    wide = preprocess.apply(plan, image, box=((-5, 99), (0, 48), (0, 48)))
    assert wide.box == ((0, 16), (0, 48), (0, 48))


def test_cache_keys_each_box_separately(tiny_ct_task, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    cache = preprocess.PreparedCache(preprocess.plan_for_task(task), tmp_path)
    case = task.cases[0]
    a = cache.get(case, box=((0, 8), (0, 48), (0, 48)))
    b = cache.get(case, box=((8, 16), (0, 48), (0, 48)))
    assert a.box != b.box and cache.misses == 2
    again = cache.get(case, box=((8, 16), (0, 48), (0, 48)))
    assert cache.hits == 1 and again.box == b.box
    np.testing.assert_array_equal(again.image, b.image)


def cascade_preset(**train):
    preset = quick_preset(**train)
    return dataclasses.replace(
        preset,
        plan=dataclasses.replace(
            preset.plan, cascade=True, max_voxels=20_000, locator_voxels=4_000, roi_margin_mm=10.0
        ),
    )


def test_cascade_only_where_volumes_do_not_fit(train_ct_task):
    task = decathlon.load_task(train_ct_task)
    assert preprocess.needs_cascade(task, cascade_preset().plan)
    assert not preprocess.needs_cascade(task, quick_preset().plan)  # fast-cpu's 1.5 M voxels: fits
    off = dataclasses.replace(cascade_preset().plan, cascade=False)
    assert not preprocess.needs_cascade(task, off)
    # ahead of training (`volseg preprocess`, the Preprocess widget) a cascade caches its locator's grid
    ahead = preprocess.cached_settings(task, cascade_preset().plan)
    assert ahead.max_voxels == 4_000 and not ahead.cascade
    assert preprocess.cached_settings(task, quick_preset().plan) == quick_preset().plan


def test_cascade_trains_locator_then_main_net_and_predicts_in_source_geometry(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "cascade.safetensors"
    events = list(Trainer(task, cascade_preset(epochs=5), out, cache_root=tmp_path / "cache").run())
    failed = [e for e in events if isinstance(e, ev.Failed)]
    assert not failed, failed
    starts = [e for e in events if isinstance(e, ev.Started)]
    assert [s.stage for s in starts] == ["locator", ""]
    # 5 epochs: 1 for the locator, 4 for the main net
    assert starts[0].total_steps == 10 and starts[1].total_steps == 40
    assert any(isinstance(e, ev.CheckpointSaved) and e.kind == "locator-best" for e in events)
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and not finished.stopped

    checkpoint = ckpt.load(out)
    assert checkpoint.locator is not None
    coarse, fine = checkpoint.locator.plan.target_spacing, checkpoint.plan.target_spacing
    assert np.prod(coarse) > np.prod(fine)  # the locator works on the coarser grid
    assert ckpt.load(ckpt.last_path(out)).locator is not None

    predictor = Predictor(out)
    case = task.cases[-1]
    image, truth = case.load()
    box = predictor.locate(image)
    prediction = predictor.predict(image)
    assert prediction.labels.shape == image.data.shape
    if box is not None:  # outside the region of interest everything is background
        outside = np.ones(image.data.shape, bool)
        outside[tuple(slice(a, b) for a, b in box)] = False
        assert not prediction.labels[outside].any()
    written = tmp_path / "pred.nii.gz"
    nifti.save_labels(prediction.labels, image.geometry, written)
    np.testing.assert_allclose(nifti.load(written).geometry.affine, image.geometry.affine)


def test_stop_during_locator_stage_resumes_there(train_ct_task, tmp_path):
    task = decathlon.load_task(train_ct_task)
    out = tmp_path / "cascade.safetensors"
    trainer = Trainer(task, cascade_preset(epochs=5), out, cache_root=tmp_path / "cache")
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, ev.Step) and event.step == 3:
            trainer.stop()
    assert events[-1].stopped and not out.exists()
    assert ckpt.last_path(ckpt.locator_path(out)).is_file()

    resumed = list(Trainer(task, cascade_preset(epochs=5), out, cache_root=tmp_path / "cache", resume=True).run())
    starts = [e for e in resumed if isinstance(e, ev.Started)]
    assert [(s.stage, s.start_step) for s in starts] == [("locator", 3), ("", 0)]
    assert not resumed[-1].stopped and ckpt.load(out).locator is not None


def test_heart_cascade_box_covers_the_atrium(heart_dir):
    """On a real case the ground-truth box with the margin holds every atrium voxel and is far
    smaller than the volume (the reason the cascade exists)."""
    task = decathlon.load_task(heart_dir)
    truth = nifti.load(task.cases[0].label_path)
    box = preprocess.roi_box(truth.data > 0, truth.spacing, 20.0)
    inside = np.zeros(truth.data.shape, bool)
    inside[tuple(slice(a, b) for a, b in box)] = True
    assert (truth.data[~inside] == 0).all()
    assert inside.sum() < 0.25 * inside.size


@pytest.mark.parametrize("margin", [0.0, 20.0])
def test_locator_metadata_round_trips(tmp_path, margin):
    from napari_volseg.models import build_model, model_config

    net = build_model(model_config("cpu-lean", 1, 2))
    plan = preprocess.Plan(target_spacing=(4.0, 4.0, 4.0))
    locator = ckpt.Locator(net.config, plan, net.state_dict(), (32, 64, 64), margin)
    path = ckpt.save(
        tmp_path / "m.safetensors", net, preprocess.Plan(target_spacing=(1, 1, 1)), {0: "bg", 1: "fg"}, locator=locator
    )
    back = ckpt.load(path).locator
    assert back.plan == plan and back.patch == (32, 64, 64) and back.margin_mm == margin
    for k, v in net.state_dict().items():
        assert (back.state[k] == v).all()
