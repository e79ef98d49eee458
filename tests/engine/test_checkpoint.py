from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.errors import OutputError
from napari_volseg.models import build_model, model_config
from napari_volseg.planning import Plan

PLAN = Plan(target_spacing=(2.0, 2.0, 2.0))


def _save(path, name="cpu-lean", optimizer=False):
    model = build_model(model_config(name))
    opt = None
    if optimizer:
        opt = torch.optim.Adam(model.parameters())
        model(torch.randn(1, 1, 32, 32, 32)).sum().backward()
        opt.step()
    return model, ckpt.save(
        path, model, PLAN, {0: "background", 1: "spleen"}, history=[{"step": 1}], step=7, optimizer=opt
    )


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model, path = _save(tmp_path / "m.safetensors", optimizer=True)
    loaded = ckpt.load(path)
    assert loaded.plan == PLAN and loaded.labels == {0: "background", 1: "spleen"} and loaded.step == 7
    rebuilt = loaded.build_model()
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    opt = torch.optim.Adam(rebuilt.parameters())
    opt.load_state_dict(loaded.optimizer)
    assert int(opt.state_dict()["state"][0]["step"]) == 1


def test_truncated_and_foreign_files_are_refused(tmp_path):
    _, path = _save(tmp_path / "m.safetensors")
    blob = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    for name, message in [
        ("cut", "not a readable"),
        ("junk", "not a readable"),
        ("other", "not a napari-volseg"),
        ("missing", "no checkpoint"),
    ]:
        with pytest.raises(ckpt.CheckpointError, match=message) as err:
            ckpt.load(tmp_path / f"{name}.safetensors")
        assert "\n" not in str(err.value)


def test_checkpoint_for_another_architecture_is_refused(tmp_path):
    _, path = _save(tmp_path / "m.safetensors")
    loaded = ckpt.load(path)
    loaded.model_config = model_config("seed-net2")
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        loaded.build_model()


def test_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    _, path = _save(tmp_path / "m.safetensors")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", boom)
    with pytest.raises(OutputError, match="cannot write .*m.safetensors: disk full"):  # one line
        _save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert np.isfinite(ckpt.load(path).state["head.weight"].numpy()).all()


DATA = Path(__file__).parent / "data"


def test_a_checkpoint_written_by_version_0_1_loads_with_a_typed_preset():
    """``data/v0.1-cascade.safetensors``: a tiny cascade checkpoint written by the code before the
    typed preset (the preset was a dict; the trainer put the effective patch and batch into it)."""
    from napari_volseg.config import Preset
    from napari_volseg.engine.infer import Predictor

    old = ckpt.load(DATA / "v0.1-cascade.safetensors")
    assert isinstance(old.preset, Preset) and old.preset.name == "fast-cpu"
    assert old.preset.train.patch_size == (16, 32, 32) and old.preset.train.batch_size == 6
    assert old.preset.train.mirror_axes == (2,) and old.preset.train.minutes == 3.0
    assert old.preset.infer.tta and old.preset.infer.overlap == 0.5 and old.preset.plan.cascade
    assert old.locator.patch == (16, 16, 32) and old.locator.margin_mm == 20.0 and old.optimizer is not None
    predictor = Predictor(old)
    assert (predictor.roi, predictor.mirror_axes, predictor.config.tta) == ((16, 32, 32), (2,), True)
    assert ckpt.read_preset(DATA / "v0.1-cascade.safetensors") == old.preset
    # the first checkpoints may have no preset at all: the defaults of config.py
    bare = ckpt.load(DATA / "v0.1-no-preset.safetensors")
    assert bare.preset == Preset(name="") and Predictor(bare).roi == (64, 64, 64)


def test_a_preset_round_trips_with_its_effective_values(tmp_path):
    import dataclasses

    from napari_volseg.config import load_preset

    preset = load_preset("fast-cpu")
    trained = dataclasses.replace(
        preset, train=dataclasses.replace(preset.train, patch_size=(16, 48, 32), batch_size=9)
    )
    model = build_model(model_config("cpu-lean"))
    path = ckpt.save(tmp_path / "m.safetensors", model, PLAN, {0: "bg", 1: "fg"}, preset=trained)
    assert ckpt.load(path).preset == trained and ckpt.read_preset(path) == trained
    assert ckpt.read_preset(tmp_path / "missing.safetensors") is None


def test_a_checkpoint_from_a_newer_version_loads_without_the_settings_it_does_not_know(tmp_path):
    model = build_model(model_config("cpu-lean"))
    path = ckpt.save(tmp_path / "m.safetensors", model, PLAN, {0: "bg", 1: "fg"})
    tensors = {}
    with safe_open(str(path), "pt") as f:
        meta = {**f.metadata(), "preset": '{"train": {"no_such_setting": 1, "lr": 0.5}}'}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(path), metadata=meta)
    loaded = ckpt.load(path)
    assert loaded.preset.train.lr == 0.5 and not hasattr(loaded.preset.train, "no_such_setting")
