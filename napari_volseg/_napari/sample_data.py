"""npe2 sample data: the first case of the synthetic CT task, with its ground truth."""

from __future__ import annotations

from pathlib import Path

from napari_volseg import paths
from napari_volseg._napari.layers import case_layer_data
from napari_volseg.io import decathlon, synthetic


def synthetic_task_dir(kind: str = "ct", cases: int = 8) -> Path:
    """The cached synthetic task folder (written once per user; ``VOLSEG_CACHE`` moves it)."""
    folder = paths.samples_dir() / f"synthetic-{kind}-{cases}"
    try:
        task = decathlon.load_task(folder)
        if len(task.cases) == cases:
            return folder
    except Exception:
        pass
    return synthetic.write_task(folder, cases=cases, kind=kind)


def synthetic_ct() -> list[tuple]:
    task = decathlon.load_task(synthetic_task_dir("ct"))
    return case_layer_data(task, task.cases[0])


def synthetic_mri() -> list[tuple]:
    task = decathlon.load_task(synthetic_task_dir("mri"))
    return case_layer_data(task, task.cases[0])
