import numpy as np
import pytest

from napari_volseg import metrics, preprocess
from napari_volseg.io import decathlon


def test_spacing_plan_round_trip_on_a_real_heart_case(heart_dir):
    task = decathlon.load_task(heart_dir)
    plan = preprocess.plan_for_task(task, cases=task.cases[:3], max_voxels=1_500_000)
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
    plan = preprocess.Plan(resample="shape", target_shape=(32, 48, 48), crop=False)
    image, label = task.cases[1].load()
    prepared = preprocess.apply(plan, image, label)
    assert prepared.image.shape == (1, 32, 48, 48)
    assert preprocess.invert(np.zeros((2, 32, 48, 48), np.float32), prepared).shape == image.data.shape


def test_ct_plan_clips_to_foreground_percentiles_and_crops_to_the_body(tiny_ct_task):
    task = decathlon.load_task(tiny_ct_task)
    plan = preprocess.plan_for_task(task)
    assert plan.normalization == "ct" and 60 < plan.ct_clip[0] < plan.ct_clip[1] < 200
    assert plan.target_spacing == (5.0, 2.0, 2.0)
    image, label = task.cases[0].load()
    prepared = preprocess.apply(plan, image, label)
    assert prepared.crop_shape[1] < image.data.shape[1]  # air around the body is cropped away
    assert int(prepared.label.sum()) == int(label.data.sum())  # same grid: nothing lost


def test_plan_hash_and_cache(tiny_ct_task, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    plan = preprocess.plan_for_task(task)
    assert plan.hash == preprocess.Plan.from_dict(plan.to_dict()).hash
    other = preprocess.Plan(**{**plan.to_dict(), "target_spacing": (5.0, 3.0, 3.0)})
    assert other.hash != plan.hash
    first = preprocess.PreparedCache(plan, tmp_path)
    a = [first.get(c) for c in task.cases[:3]]
    assert (first.misses, first.hits) == (3, 0)
    second = preprocess.PreparedCache(plan, tmp_path)
    b = [second.get(c) for c in task.cases[:3]]
    assert (second.misses, second.hits) == (0, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        assert x.box == y.box


def test_plan_refuses_nonsense():
    with pytest.raises(preprocess.VolsegError):
        preprocess.Plan(resample="spacing", target_spacing=None)


def test_a_region_of_interest_is_z_scored_by_the_whole_volume_whatever_box_is_cut(heart_dir):
    task = decathlon.load_task(heart_dir)
    image, _ = task.cases[0].load()
    plan = preprocess.Plan(target_spacing=image.spacing)
    small = preprocess.apply(plan, image, box=((40, 80), (100, 160), (100, 160)))
    large = preprocess.apply(plan, image, box=((20, 100), (60, 200), (60, 200)))
    # the same voxels get the same values: a larger box (a generous locator) no longer brightens them
    np.testing.assert_allclose(small.image, large.image[:, 20:60, 40:100, 40:100], atol=1e-5)
    legacy = preprocess.Plan.from_dict({k: v for k, v in plan.to_dict().items() if k != "zscore_region"})
    assert legacy.zscore_region == "box"  # checkpoints from before keep the normalisation they were trained with
    old_small = preprocess.apply(legacy, image, box=((40, 80), (100, 160), (100, 160)))
    assert abs(float(old_small.image.mean())) < 1e-3 and abs(float(small.image.mean())) > 0.3
