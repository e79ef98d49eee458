"""npe2 reader: ``.nii`` / ``.nii.gz`` files and MSD task folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_volseg._napari.layers import case_layer_data, image_layer, labels_layer
from napari_volseg.errors import VolsegError
from napari_volseg.io import decathlon, nifti

LABEL_FOLDERS = {"labelstr", "labelsts", "labels", "segmentations"}


def napari_get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for NIfTI files or an MSD task folder, else None (napari tries others)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        return None
    if all(nifti.is_nifti_path(p) for p in paths):
        return read_nifti
    if len(paths) == 1 and decathlon.is_task_folder(paths[0]):
        return read_task
    if len(paths) == 1 and _is_scans_folder(Path(paths[0])):
        return read_scans_folder
    return None


def _is_scans_folder(path: Path) -> bool:
    return path.is_dir() and any(nifti.is_nifti_path(p) for p in path.iterdir())


def read_scans_folder(path: str | list[str]) -> list[tuple]:
    """A folder of NIfTI files without ``dataset.json``: offer to make it a task (nothing opens yet)."""
    from napari_volseg._napari.widgets.new_task import offer

    offer(Path(path if isinstance(path, str) else path[0]))
    return [(None,)]


def _looks_like_labels(path: Path, volume: nifti.Volume) -> bool:
    if path.parent.name.lower() in LABEL_FOLDERS:
        return True
    data = volume.data
    if volume.channels > 1 or not np.issubdtype(data.dtype, np.integer) or data.min() < 0 or data.max() > 255:
        return False
    return len(np.unique(data[::2, ::2, ::2])) <= 16


def read_nifti(path: str | list[str]) -> list[tuple]:
    """One layer per file: a Labels layer for label files, else an Image layer."""
    layers = []
    for p in [path] if isinstance(path, str) else path:
        p = Path(p)
        volume = nifti.load(p)
        name = decathlon.case_id_of(p)
        if _looks_like_labels(p, volume):
            volume = nifti.load(p, label=True)
            layers.append(labels_layer(volume, name, case=name))
        else:
            layers.append(image_layer(volume, name, case=name))
        for issue in volume.issues:
            _notify(issue)
    return layers


def read_task(path: str | list[str]) -> list[tuple]:
    """An MSD task folder opens its first labelled case: image plus ground truth."""
    folder = Path(path if isinstance(path, str) else path[0])
    task = decathlon.load_task(folder)
    return case_layer_data(task, (task.cases or task.test_cases)[0])


def _notify(message: str) -> None:
    try:
        from napari.utils.notifications import show_warning
    except ImportError:  # pragma: no cover - napari is a dependency
        return
    show_warning(message)


__all__ = ["VolsegError", "napari_get_reader", "read_nifti", "read_task"]
