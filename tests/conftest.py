"""Shared fixtures: the real MSD cases beside the checkout (skipped when absent) and small synthetic tasks."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from napari_volseg.io import synthetic

os.environ.setdefault("QT_API", "pyqt5")
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


@pytest.fixture
def annotate_task(tmp_path) -> Path:
    """A fresh tiny synthetic CT task per test: 4 labelled cases and 2 unlabelled ones in imagesTs/."""
    return synthetic.write_task(tmp_path / "Task92_Annotate", cases=4, kind="ct", spec=TINY_CT, test_cases=2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A model trained for 8 steps on a tiny task (4 labelled cases, 1 validating): weights to start from."""
    from napari_volseg.engine.train import Trainer
    from napari_volseg.io.decathlon import load_task

    root = tmp_path_factory.mktemp("ckpt")
    task = load_task(synthetic.write_task(root / "Task92_Annotate", cases=4, kind="ct", spec=TINY_CT))
    preset = quick_preset(epochs=2, iterations_per_epoch=4, val_cases=1, val_every=2)
    events = list(Trainer(task, preset, root / "v001.safetensors", cache_root=root / "cache").run())
    assert type(events[-1]).__name__ == "Finished", events[-1]
    return root / "v001.safetensors"
