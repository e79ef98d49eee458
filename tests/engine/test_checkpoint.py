import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.errors import OutputError
from napari_volseg.models import build_model, model_config
from napari_volseg.preprocess import Plan

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
