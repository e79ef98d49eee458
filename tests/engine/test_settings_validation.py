"""Settings are checked where they are defined: presets, CLI overrides, forms and checkpoints refuse alike."""

import dataclasses
import math

import pytest
import torch

from napari_volseg.config import InferConfig, PlanSettings, TrainConfig, load_preset, preset_from_dict
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.errors import SettingsError, VolsegError
from napari_volseg.models import build_model, model_config
from napari_volseg.planning import Plan

SETTINGS = (PlanSettings, TrainConfig, InferConfig, Plan)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_field_has_help_and_every_number_has_bounds(cls):
    for f in dataclasses.fields(cls):
        meta = f.metadata
        assert meta.get("help") and "\n" not in meta["help"], f.name
        assert set(meta) <= {"help", "min", "max", "min_exclusive", "max_exclusive", "choices"}, f.name
        if "choices" in meta:
            assert f.default in meta["choices"], f.name
    cls(**({"target_spacing": (1.0, 1.0, 1.0)} if cls is Plan else {}))  # the defaults pass their own rules


def test_shipped_presets_pass():
    assert load_preset("fast-cpu").train.lr == 0.01


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("train", {"lr": -1}, r"^x.yaml: train.lr must be > 0 \(got -1\)$"),
        ("train", {"patch_size": [0, -4, 8]}, r"train.patch_size values must be >= 1 \(got \[0, -4, 8\]\)$"),
        ("train", {"patch_size": [64, 64]}, r"train.patch_size must be a list of 3 numbers"),
        ("train", {"epochs": 2.5}, r"train.epochs must be a whole number \(got 2.5\)"),
        ("train", {"lr": "fast"}, r"train.lr must be a number \(got 'fast'\)"),
        ("train", {"augment": "yes"}, r"train.augment must be true or false"),
        ("train", {"loss": "focal"}, r"train.loss must be one of 'ce', 'dice', 'dicece' \(got 'focal'\)"),
        ("train", {"patchsize": [8, 8, 8]}, r"train: unknown setting\(s\) 'patchsize' \(did you mean patch_size\?\)"),
        ("infer", {"overlap": 1.0}, r"infer.overlap must be < 1 \(got 1.0\)"),
        ("plan", {"resample": "shape"}, r"plan.shape must be set when plan.resample is 'shape'"),
        ("plan", {"spacing": [1.0, 0.0, float("nan")]}, r"plan.spacing values must be > 0"),
        ("plan", {"locator_fraction": 1.0}, r"plan.locator_fraction must be < 1"),
        ("train", "fast", r"train must be a mapping of settings"),
    ],
)
def test_bad_preset_values_are_one_settings_error(section, values, message):
    with pytest.raises(SettingsError, match=message) as err:
        preset_from_dict({"name": "x", section: values}, where="x.yaml")
    assert "\n" not in str(err.value)


def test_cli_overrides_and_forms_get_the_same_message_as_the_yaml():
    preset = load_preset("fast-cpu")
    for values in ({"lr": -1.0}, {"minutes": -3.0}, {"patch_size": (0, -4, 8)}):
        with pytest.raises(SettingsError) as from_yaml:
            preset_from_dict({"name": "x", "train": values}, where="x.yaml")
        with pytest.raises(SettingsError) as from_flags:
            preset.with_overrides(**values)
        assert str(from_yaml.value) == f"x.yaml: {from_flags.value}"
    assert str(from_flags.value) == "train.patch_size values must be >= 1 (got [0, -4, 8])"


def test_values_are_normalised_so_equal_settings_compare_equal():
    a = TrainConfig(patch_size=[32, 32, 32], lr=1, mirror_axes=[2])
    assert a == TrainConfig(patch_size=(32, 32, 32), lr=1.0, mirror_axes=(2,))
    assert isinstance(a.lr, float) and a.patch_size == (32, 32, 32)
    assert Plan(target_spacing=[1, 2, 3]).hash == Plan(target_spacing=(1.0, 2.0, 3.0)).hash


def test_yaml_syntax_errors_are_one_line_with_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntrain:\n  lr: 0.1\n   epochs: 3\n")
    with pytest.raises(VolsegError, match=r"^preset bad.yaml is not valid YAML at line 4, column 10: ") as err:
        load_preset(bad)
    assert "\n" not in str(err.value)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(VolsegError, match="is not a YAML text file"):
        load_preset(tmp_path / "binary.yaml")
    with pytest.raises(VolsegError, match="no preset file"):
        load_preset(tmp_path / "none.yaml")


def test_yaml_exponents_are_numbers(tmp_path):
    (tmp_path / "e.yaml").write_text("name: e\ntrain:\n  lr: 1e-3\n  weight_decay: 3E-5\n")
    preset = load_preset(tmp_path / "e.yaml")
    assert preset.train.lr == 1e-3 and preset.train.weight_decay == 3e-5


def test_a_checkpoint_with_bad_stored_settings_is_refused_with_the_same_message(tmp_path):
    net = build_model(model_config("cpu-lean"))
    plan = Plan(target_spacing=(1.0, 1.0, 1.0))
    path = ckpt.save(tmp_path / "m.safetensors", net, plan, {0: "bg", 1: "fg"})
    meta, tensors = ckpt.read_tensors(path)
    ckpt.write_atomic(path, tensors, {**meta, "preset": json_of({"train": {"lr": -1.0}})})  # written elsewhere
    with pytest.raises(ckpt.CheckpointError, match=r"^m.safetensors: train.lr must be > 0 \(got -1.0\)$"):
        ckpt.load(path)
    path = ckpt.save(tmp_path / "p.safetensors", net, plan, {0: "bg", 1: "fg"})
    meta = {"format": ckpt.FORMAT, "model_config": json_of(net.config.to_dict())}
    meta["plan"] = json_of({**plan.to_dict(), "num_classes": 1})
    meta["labels"] = json_of({"0": "bg"})
    from safetensors.torch import save_file

    save_file({"model.x": torch.zeros(1)}, str(path), metadata=meta)
    with pytest.raises(ckpt.CheckpointError, match=r"^p.safetensors: plan.num_classes must be >= 2 \(got 1\)$"):
        ckpt.load(path)


def json_of(value) -> str:
    import json

    return json.dumps(value)


def test_overflowing_and_non_finite_numbers_are_refused():
    for value in (math.inf, math.nan, 10**400):
        with pytest.raises(SettingsError, match="train.lr must be a finite number"):
            TrainConfig(lr=value)
    assert TrainConfig.__dataclass_fields__["lr"].metadata["min_exclusive"] is True


def test_every_shipped_preset_loads_and_the_default_is_one_of_them():
    from napari_volseg.config import DEFAULT_PRESET, list_presets

    presets = list_presets()  # each file checked as it loads (a bad value is one SettingsError line)
    assert DEFAULT_PRESET in presets and len(presets) >= 3
