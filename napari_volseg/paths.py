"""The one home of paths (the settings' defaults and name lists live in :mod:`napari_volseg.config`).

Every face and core module asks here; none reads ``VOLSEG_CACHE`` or spells a default itself.
``VOLSEG_CACHE`` moves the whole cache (preprocessed cases, training runs, downloaded models,
the synthetic sample task); without it the cache is ``$XDG_CACHE_HOME/napari-volseg`` or
``~/.cache/napari-volseg``.
"""

from __future__ import annotations

import os
from pathlib import Path

MSD_BASE_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com"
"""The mirror of the Medical Segmentation Decathlon tarballs (MONAI's)."""


def cache_root() -> Path:
    """The root of everything napari-volseg caches for this user."""
    env = os.environ.get("VOLSEG_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "napari-volseg"


def preprocessed_dir() -> Path:
    """Preprocessed cases, one folder per plan hash."""
    return cache_root() / "preprocessed"


def runs_dir() -> Path:
    """Checkpoints of runs started from the napari widgets."""
    return cache_root() / "runs"


def models_dir() -> Path:
    """Pretrained models pulled from the model zoo."""
    return cache_root() / "models"


def samples_dir() -> Path:
    """Synthetic sample tasks written on first use."""
    return cache_root() / "samples"


def task_models_dir(task_root: Path, task_name: str) -> Path:
    """Where the annotation loop keeps a task's model versions: ``<task>/models/`` when the task folder
    is writable, else ``runs/<task name>-models/`` in the cache."""
    task_root = Path(task_root)
    if os.access(task_root, os.W_OK):
        return task_root / "models"
    return runs_dir() / f"{task_name}-models"
