"""Planning: task statistics from the training split, plans from plan settings, the cascade decision."""

import dataclasses

import numpy as np
import pytest
from conftest import cascade_preset, quick_preset

from napari_volseg import planning
from napari_volseg.config import PlanSettings
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon


def test_ct_plan_clips_to_foreground_percentiles_at_the_median_spacing(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    planned = planning.plan_run(task, quick_preset())
    plan, cascade = planned.plan, planned.cascade
    assert plan.normalization == "ct" and 60 < plan.ct_clip[0] < plan.ct_clip[1] < 200 and not cascade
    assert plan.target_spacing == (5.0, 2.0, 2.0) and plan.num_classes == 2 and plan.in_channels == 1


def test_plans_are_computed_from_the_training_split_only(tiny_ct_task):
    """CT statistics are in the plan's hash: every face must measure the same cases, the training ones."""
    task = decathlon.load_task(tiny_ct_task)
    preset = quick_preset()
    split = decathlon.training_split(task, preset.train)
    planned = planning.plan_run(task, preset)
    plan, _ = planned.plan, planned.cascade
    train_only = planning.make_plan(preset.plan, planning.statistics(task, split.train, intensities=True))
    every_case = planning.make_plan(preset.plan, planning.statistics(task, task.cases, intensities=True))
    assert plan == train_only and plan.hash != every_case.hash


def test_anisotropic_tasks_take_the_coarse_axis_10th_percentile():
    stats = planning.TaskStatistics(
        kind="mri",
        num_classes=2,
        in_channels=1,
        spacings=((5.0, 1.0, 1.0), (4.0, 1.0, 1.0), (6.0, 1.0, 1.0), (2.0, 1.0, 1.0)),
        extents_mm=((100.0, 200.0, 200.0),) * 4,
    )
    assert stats.target_spacing == pytest.approx((2.6, 1.0, 1.0))
    # a voxel budget coarsens isotropically until the median volume fits
    plan = planning.make_plan(PlanSettings(max_voxels=100_000), stats)
    assert np.prod(np.array([100.0, 200.0, 200.0]) / plan.target_spacing) == pytest.approx(100_000, rel=1e-3)


def test_a_ct_plan_without_intensity_statistics_is_refused(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    with pytest.raises(VolsegError, match="intensity statistics"):
        planning.make_plan(PlanSettings(), planning.statistics(task, task.cases))
    shape = planning.make_plan(
        PlanSettings(resample="shape", shape=(16, 32, 32)), planning.statistics(task, task.cases)
    )
    assert shape.normalization == "zscore" and shape.target_shape == (16, 32, 32) and not shape.crop


def test_plan_hash_round_trips_and_changes_with_the_plan():
    plan = planning.Plan(target_spacing=(5.0, 2.0, 2.0), normalization="ct", ct_clip=(1.0, 2.0))
    assert plan.hash == planning.Plan.from_dict(plan.to_dict()).hash
    assert planning.Plan(**{**plan.to_dict(), "target_spacing": (5.0, 3.0, 3.0)}).hash != plan.hash
    with pytest.raises(VolsegError):
        planning.Plan(resample="spacing", target_spacing=None)


def test_cascade_only_where_volumes_do_not_fit(train_ct_task):
    task = decathlon.load_task(train_ct_task)
    stats = planning.statistics(task, task.cases)
    assert planning.needs_cascade(cascade_preset().plan, stats)
    assert not planning.needs_cascade(quick_preset().plan, stats)  # fast-cpu's 1.5 M voxels: fits
    off = dataclasses.replace(cascade_preset().plan, cascade=False)
    assert not planning.needs_cascade(off, stats)
    # ahead of training (`volseg preprocess`, the Preprocess widget) a cascade caches its locator's grid
    ahead = planning.whole_volume_settings(cascade_preset().plan, stats)
    assert ahead.max_voxels == 4_000 and not ahead.cascade
    assert planning.whole_volume_settings(quick_preset().plan, stats) == quick_preset().plan
    planned = planning.plan_run(task, cascade_preset())
    plan, cascade = planned.plan, planned.cascade
    assert cascade and np.prod(plan.target_spacing) > np.prod(
        planning.plan_run(task, quick_preset()).plan.target_spacing
    )
    # the stages and their time shares: the trainer, the CLI, Preprocess and the Train tab's clock ask here
    preset = cascade_preset().with_overrides(minutes=10.0)
    [(locator, lp, ls), (main, mp, ms)] = planning.plan_run(task, preset).stages
    assert (locator, main) == ("locator", "") and ls + ms == pytest.approx(1.0)
    assert ls == preset.plan.locator_fraction == planning.time_share(preset, "locator", True)
    assert lp.train.minutes == pytest.approx(10.0 * ls) and mp.train.minutes == pytest.approx(10.0 * ms)
    assert lp.plan.max_voxels == preset.plan.locator_voxels and mp.plan == preset.plan
    [(only, same, share)] = planning.plan_run(task, quick_preset()).stages
    assert (only, same, share) == ("", quick_preset(), 1.0) and planning.time_share(preset, "", False) == 1.0


def test_roi_extents_are_the_median_box_in_mm_and_skip_cases_without_one():
    boxes = {"a": ((0, 10), (0, 20), (0, 30)), "b": ((0, 20), (0, 40), (0, 60)), "c": None}
    spacings = {"a": (2.0, 1.0, 1.0), "b": (2.0, 1.0, 1.0), "c": (1.0, 1.0, 1.0)}
    assert planning.roi_extents(boxes, spacings) == (30.0, 30.0, 45.0)
