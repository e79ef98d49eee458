"""A tiny classifier preset so that training tests take seconds: a 4-8-8-8 net on 20 digits."""

from __future__ import annotations

import pytest

from napari_volseg.classify.config import ClassifyPreset
from napari_volseg.models import registry
from napari_volseg.models.vgg3d import VGG3DConfig


@pytest.fixture
def tiny_preset(monkeypatch) -> ClassifyPreset:
    monkeypatch.setitem(registry.CLASSIFIER_PRESETS, "tiny-3d", (VGG3DConfig(widths=(4, 8, 8, 8), hidden=16), "tests"))
    return ClassifyPreset(
        name="tiny", model="tiny-3d", epochs=2, lr=1e-2, batch_size=8, train_copies=1, test_copies=1, limit=20
    )
