"""Shared fixtures: the real MSD cases beside the checkout (skipped when absent) and small synthetic tasks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_volseg.io import synthetic

os.environ.setdefault("QT_API", "pyqt5")
SHARED = Path(os.environ.get("VOLSEG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TINY_CT = synthetic.PhantomSpec(shape=(16, 48, 48), spacing=(5.0, 2.0, 2.0))


def shared_task(name: str) -> Path:
    folder = SHARED / name
    if not (folder / "dataset.json").is_file():
        pytest.skip(f"real MSD data not available ({folder})")
    return folder


@pytest.fixture(scope="session")
def heart_dir() -> Path:
    return shared_task("Task02_Heart")


@pytest.fixture(scope="session")
def hippocampus_dir() -> Path:
    return shared_task("Task04_Hippocampus")


@pytest.fixture(scope="session")
def tiny_ct_task(tmp_path_factory) -> Path:
    """Six small synthetic CT cases (16 x 48 x 48 voxels), written once per test session."""
    return synthetic.write_task(tmp_path_factory.mktemp("tiny") / "Task90_TinyCT", cases=6, kind="ct", spec=TINY_CT)
