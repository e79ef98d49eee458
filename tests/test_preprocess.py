"""Applying a plan and inverting it exactly to the source grid; regions of interest."""

import numpy as np
from conftest import quick_preset

from napari_volseg import metrics, planning, preprocess
from napari_volseg.config import PlanSettings
from napari_volseg.io import decathlon


def test_spacing_plan_round_trip_on_a_real_heart_case(heart_dir):
    task = decathlon.load_task(heart_dir)
    plan = planning.make_plan(PlanSettings(max_voxels=1_500_000), planning.statistics(task, task.cases[:3]))
    assert plan.normalization == "zscore" and min(plan.target_spacing) > 1.25
    image, label = task.cases[0].load()
    prepared = preprocess.apply(plan, image, label)
    assert prepared.image.dtype == np.float32 and prepared.image.shape[1:] == prepared.label.shape
    assert abs(float(prepared.image.mean())) < 0.2
    onehot = np.stack([prepared.label == 0, prepared.label == 1]).astype(np.float32)
    back = preprocess.invert(onehot, prepared)
    assert back.shape == label.data.shape
    d, _ = metrics.dice(back, label.data)
    assert d > 0.9  # the coarse grid and back loses little when probabilities are resampled


def test_shape_plan_resizes_to_the_fixed_shape(heart_dir):
    task = decathlon.load_task(heart_dir)
    plan = planning.Plan(resample="shape", target_shape=(32, 48, 48), crop=False)
    image, label = task.cases[1].load()
    prepared = preprocess.apply(plan, image, label)
    assert prepared.image.shape == (1, 32, 48, 48)
    assert preprocess.invert(np.zeros((2, 32, 48, 48), np.float32), prepared).shape == image.data.shape


def test_ct_plan_crops_to_the_body(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    planned = planning.plan_run(task, quick_preset())
    plan, _ = planned.plan, planned.cascade
    image, label = task.cases[0].load()
    prepared = preprocess.apply(plan, image, label)
    assert prepared.crop_shape[1] < image.data.shape[1]  # air around the body is cropped away
    assert int(prepared.label.sum()) == int(label.data.sum())  # same grid: nothing lost


def test_apply_with_box_inverts_to_the_source_grid(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    image, label = task.cases[0].load()
    planned = planning.plan_run(task, quick_preset())
    plan, _ = planned.plan, planned.cascade
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


def test_heart_cascade_box_covers_the_atrium(heart_dir):
    """On a real case the ground-truth box with the margin holds every atrium voxel and is far
    smaller than the volume (the reason the cascade exists)."""
    from napari_volseg.io import nifti

    task = decathlon.load_task(heart_dir)
    truth = nifti.load(task.cases[0].label_path)
    box = preprocess.roi_box(truth.data > 0, truth.spacing, 20.0)
    inside = np.zeros(truth.data.shape, bool)
    inside[tuple(slice(a, b) for a, b in box)] = True
    assert (truth.data[~inside] == 0).all()
    assert inside.sum() < 0.25 * inside.size


def test_a_region_of_interest_is_z_scored_by_the_whole_volume_whatever_box_is_cut(heart_dir):
    task = decathlon.load_task(heart_dir)
    image, _ = task.cases[0].load()
    plan = planning.Plan(target_spacing=image.spacing)
    small = preprocess.apply(plan, image, box=((40, 80), (100, 160), (100, 160)))
    large = preprocess.apply(plan, image, box=((20, 100), (60, 200), (60, 200)))
    # the same voxels get the same values: a larger box (a generous locator) no longer brightens them
    np.testing.assert_allclose(small.image, large.image[:, 20:60, 40:100, 40:100], atol=1e-5)
    legacy = planning.Plan.from_dict({k: v for k, v in plan.to_dict().items() if k != "zscore_region"})
    assert legacy.zscore_region == "box"  # checkpoints from before keep the normalisation they were trained with
    old_small = preprocess.apply(legacy, image, box=((40, 80), (100, 160), (100, 160)))
    assert abs(float(old_small.image.mean())) < 1e-3 and abs(float(small.image.mean())) > 0.3
