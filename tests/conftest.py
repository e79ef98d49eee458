"""Shared fixtures: the real MSD cases beside the checkout (skipped when absent) and small synthetic tasks."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from napari_volseg.io import synthetic

os.environ.setdefault("QT_API", "pyqt5")
# pytest-qt must load the binding qtpy and napari use: left to guess, it imports PyQt6 first, and qtpy
# then falls back to it ("Selected binding 'pyqt5' could not be found; falling back to 'pyqt6'")
os.environ.setdefault("PYTEST_QT_API", os.environ["QT_API"])
SHARED = Path(os.environ.get("VOLSEG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TINY_CT = synthetic.PhantomSpec(shape=(16, 48, 48), spacing=(5.0, 2.0, 2.0))
TRAIN_CT = synthetic.PhantomSpec(shape=(24, 64, 64), spacing=(5.0, 1.6, 1.6))


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


@pytest.fixture(scope="session")
def train_ct_task(tmp_path_factory) -> Path:
    """Six synthetic CT cases (24 x 64 x 64 voxels at 5 x 1.6 x 1.6 mm) that a U-Net learns in seconds."""
    return synthetic.write_task(tmp_path_factory.mktemp("train") / "Task91_TrainCT", cases=6, kind="ct", spec=TRAIN_CT)


def quick_preset(**train):
    """fast-cpu shrunk for tests: whole-volume patches, validation every 2 epochs of 10 steps."""
    from napari_volseg.engine.config import load_preset

    settings = {
        "patch_size": (16, 64, 64),
        "iterations_per_epoch": 10,
        "val_every": 2,
        "val_cases": 2,
        "minutes": None,
        "epochs": 2,
        "threads": 2,
    }
    settings.update(train)
    preset = load_preset("fast-cpu").with_overrides(**settings)
    # batches of two unless a test asks for more: fast-cpu's voxel-sized batches would quadruple test time
    batch_voxels = train.get("batch_voxels")
    return dataclasses.replace(preset, train=dataclasses.replace(preset.train, batch_voxels=batch_voxels))


def cascade_preset(**train):
    """quick_preset forced to a cascade on the small synthetic tasks (tiny voxel budgets)."""
    preset = quick_preset(**train)
    plan = dataclasses.replace(preset.plan, cascade=True, max_voxels=20_000, locator_voxels=4_000, roi_margin_mm=10.0)
    return dataclasses.replace(preset, plan=plan)


@pytest.fixture
def tiny_preset(monkeypatch):
    """A classifier preset that trains in seconds: a 4-8-8-8 VGG3D on the first 20 train and test digits."""
    from napari_volseg.classify.config import ClassifyPreset
    from napari_volseg.models import registry
    from napari_volseg.models.vgg3d import VGG3DConfig

    monkeypatch.setitem(registry.CLASSIFIER_PRESETS, "tiny-3d", (VGG3DConfig(widths=(4, 8, 8, 8), hidden=16), "tests"))
    return ClassifyPreset(
        name="tiny", model="tiny-3d", epochs=2, lr=1e-2, batch_size=8, train_copies=1, test_copies=1, limit=20
    )


@pytest.fixture(scope="session")
def trained_ct_checkpoint(train_ct_task, tmp_path_factory) -> Path:
    """fast-cpu (whole volumes: the phantom fits its voxel budget) trained for 40 steps on the synthetic CT."""
    from napari_volseg.engine import events as ev
    from napari_volseg.engine.train import Trainer
    from napari_volseg.io.decathlon import load_task

    out = tmp_path_factory.mktemp("trained") / "ct.safetensors"
    preset = quick_preset(epochs=4, val_every=4)
    for event in Trainer(load_task(train_ct_task), preset, out, cache_root=out.parent / "cache").run():
        assert not isinstance(event, ev.Failed), event
    return out
