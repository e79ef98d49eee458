"""npe2 sample data: the first case of the synthetic CT task, with its ground truth."""

from __future__ import annotations

from napari_volseg._napari.layers import case_layer_data
from napari_volseg.io import decathlon
from napari_volseg.io.synthetic import synthetic_task_dir


def synthetic_ct() -> list[tuple]:
    task = decathlon.load_task(synthetic_task_dir("ct"))
    return case_layer_data(task, task.cases[0])


def synthetic_mri() -> list[tuple]:
    task = decathlon.load_task(synthetic_task_dir("mri"))
    return case_layer_data(task, task.cases[0])
