"""The disk cache of prepared cases: keyed by the plan's hash, per region of interest, filled with progress."""

import numpy as np
from conftest import quick_preset

from napari_volseg import planning
from napari_volseg.cache import PreparedCache
from napari_volseg.events import Progress
from napari_volseg.io import decathlon


def test_a_second_cache_reads_what_the_first_wrote(tiny_ct_task, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    planned = planning.plan_run(task, quick_preset())
    plan, _ = planned.plan, planned.cascade
    first = PreparedCache(plan, tmp_path)
    a = [first.get(c) for c in task.cases[:3]]
    assert (first.misses, first.hits) == (3, 0) and first.folder == tmp_path / plan.hash
    second = PreparedCache(plan, tmp_path)
    b = [second.get(c) for c in task.cases[:3]]
    assert (second.misses, second.hits) == (0, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        assert x.box == y.box


def test_cache_keys_each_box_separately(tiny_ct_task, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    cache = PreparedCache(planning.plan_run(task, quick_preset()).plan, tmp_path)
    case = task.cases[0]
    a = cache.get(case, box=((0, 8), (0, 48), (0, 48)))
    b = cache.get(case, box=((8, 16), (0, 48), (0, 48)))
    assert a.box != b.box and cache.misses == 2
    again = cache.get(case, box=((8, 16), (0, 48), (0, 48)))
    assert cache.hits == 1 and again.box == b.box
    np.testing.assert_array_equal(again.image, b.image)


def test_fill_reports_each_case_and_skips_cached_ones(tiny_ct_task, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    cache = PreparedCache(planning.plan_run(task, quick_preset()).plan, tmp_path)
    cache.get(task.cases[0])
    events = list(cache.fill(task.cases))
    assert events == [Progress(done=i + 1, total=6, item=c.id) for i, c in enumerate(task.cases)]
    assert (cache.misses, cache.hits) == (6, 1)
    assert all(cache.is_cached(c) for c in task.cases)
