"""Issue 11's table: every bad input is one `volseg: error:` line, exit status 1, and nothing written."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_nifti

from napari_volseg import cli
from napari_volseg.config import preset_from_dict
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.models import build_model, model_config
from napari_volseg.planning import Plan

VOLSEG = str(Path(sys.executable).with_name("volseg"))


@pytest.fixture
def model(tmp_path):
    net = build_model(model_config("cpu-lean"))
    plan = Plan(target_spacing=(5.0, 2.0, 2.0), crop=False)
    preset = preset_from_dict({"name": "test", "train": {"patch_size": [16, 32, 32]}})
    return ckpt.save(tmp_path / "model.safetensors", net, plan, {0: "background", 1: "spleen"}, preset=preset)


def _fails_with_one_line(argv, capsys, message):
    assert cli.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("volseg: error: ") and err.count("\n") == 1, err
    assert message in err, err
    return err


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*")) if folder.exists() else []


def test_predict_into_an_existing_file(model, tiny_ct_task, tmp_path, capsys):
    taken = tmp_path / "predictions"
    taken.write_text("my notes")
    _fails_with_one_line(["predict", "--model", model, "--out", taken, tiny_ct_task / "imagesTr"], capsys, "is a file")
    assert taken.read_text() == "my notes"


@pytest.mark.slow
def test_predict_an_image_with_a_degenerate_affine_warns_once_and_writes_labels(model, tmp_path):
    data = np.zeros((32, 32, 16), np.float32)
    data[8:24, 8:24, 4:12] = 100.0
    image = write_nifti(tmp_path / "deg.nii.gz", data, sform=np.zeros((4, 4)), qform=np.diag([2.0, 2.0, 5.0, 1.0]))
    argv = [VOLSEG, "predict", "--model", str(model), "--out", str(tmp_path / "out"), str(image)]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("deg.nii.gz: its sform is degenerate (singular); using its qform") == 1
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "deg.nii.gz").is_file()


def test_train_into_an_unwritable_folder_is_refused_before_any_work(
    train_ct_task, unwritable_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    argv = ["train", "--data", train_ct_task, "--out", unwritable_dir / "model.safetensors", "--epochs", "1"]
    _fails_with_one_line(argv, capsys, f"no permission to write in {unwritable_dir}")
    assert _files(unwritable_dir) == [] and _files(tmp_path / "cache") == []  # not even preprocessing


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("lr: -1", "train.lr must be > 0 (got -1)"),
        ("patch_size: [0, -4, 8]", "train.patch_size values must be >= 1 (got [0, -4, 8])"),
    ],
)
def test_a_preset_with_bad_values(train_ct_task, tmp_path, monkeypatch, capsys, train, message):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "bad.yaml").write_text(f"name: bad\ntrain:\n  {train}\n")
    argv = ["train", "--data", train_ct_task, "--preset", tmp_path / "bad.yaml", "--out", tmp_path / "m.safetensors"]
    _fails_with_one_line(argv, capsys, f"bad.yaml: {message}")
    assert not (tmp_path / "m.safetensors").exists() and _files(tmp_path / "cache") == []


def test_negative_minutes(train_ct_task, tmp_path, capsys):
    argv = ["train", "--data", train_ct_task, "--out", tmp_path / "m.safetensors", "--minutes", "-3"]
    _fails_with_one_line(argv, capsys, "train.minutes must be > 0 (got -3.0)")
    assert not (tmp_path / "m.safetensors").exists()


def test_a_task_whose_labels_are_empty(tiny_ct_task, tmp_path, capsys):
    task = tmp_path / "Task"
    shutil.copytree(tiny_ct_task, task)
    meta = json.loads((task / "dataset.json").read_text())
    (task / "dataset.json").write_text(json.dumps({**meta, "labels": {}}))
    argv = ["train", "--data", task, "--out", tmp_path / "m.safetensors", "--epochs", "1"]
    _fails_with_one_line(argv, capsys, "'labels' must be a non-empty object")
    assert not (tmp_path / "m.safetensors").exists()


def test_a_preset_with_a_yaml_syntax_error(train_ct_task, tmp_path, capsys):
    (tmp_path / "typo.yaml").write_text("name: typo\ntrain:\n  lr: 0.01\n epochs: [3\n")
    argv = ["train", "--data", train_ct_task, "--preset", tmp_path / "typo.yaml", "--out", tmp_path / "m.safetensors"]
    _fails_with_one_line(argv, capsys, "preset typo.yaml is not valid YAML at line 4, column 2")


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--model", "{tmp}", "--out", "{tmp}/o", "{task}/imagesTr"],  # a folder as the checkpoint
        ["predict", "--model", "{model}", "--out", "{task}/imagesTr", "{task}/imagesTr"],  # outputs over inputs
        ["predict", "--model", "{model}", "--out", "{tmp}/o", "{task}/labelsTr"],  # label files as images
        ["train", "--data", "{task}", "--out", "{task}", "--epochs", "1"],  # a folder as the checkpoint
        ["train", "--data", "{task}", "--out", "{model}/x.safetensors"],  # a file where a folder must be
        ["train", "--data", "{task}", "--out", "{tmp}/m.safetensors", "--epochs", "0"],
        ["train", "--data", "{task}", "--out", "{tmp}/m.safetensors", "--preset", "{model}"],  # not YAML
        ["evaluate", "--pred", "{task}/labelsTr", "--truth", "{task}/labelsTr", "--csv", "{task}"],
        ["synth", "--out", "{model}"],
        ["synth", "--out", "{tmp}/s", "--cases", "0"],
    ],
)
def test_more_bad_inputs_are_one_line_and_write_nothing(argv, model, tiny_ct_task, tmp_path, capsys):
    before = _files(tmp_path)
    argv = [a.format(tmp=tmp_path, model=model, task=tiny_ct_task) for a in argv]
    _fails_with_one_line(argv, capsys, "")
    assert _files(tmp_path) == before


def test_a_multi_channel_image_for_a_single_channel_model(model, tmp_path, capsys):
    four = write_nifti(tmp_path / "four.nii.gz", np.zeros((8, 8, 8, 4), np.float32), sform=np.eye(4))
    argv = ["predict", "--model", model, "--out", tmp_path / "out", four]
    _fails_with_one_line(argv, capsys, "expects 1 channel(s), the image has 4")
    assert not (tmp_path / "out").exists()
