"""``volseg interact``, ``volseg train --interactive`` and ``volseg finetune`` of a promptable model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_volseg.cli import main
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.interactive import open_interactive
from napari_volseg.io import volumes
from napari_volseg.io.geometry import geometry_from_spacing

SHAPE, SPACING = (24, 48, 48), (2.0, 1.0, 1.0)


@pytest.fixture
def scan(tmp_path):
    z, y, x = np.meshgrid(*(np.arange(s) * sp for s, sp in zip(SHAPE, SPACING, strict=True)), indexing="ij")
    truth = (z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2 <= 10**2
    image = (truth * 200.0 + np.random.default_rng(0).normal(scale=20, size=SHAPE)).astype(np.float32)
    return volumes.write_image(tmp_path / "scan.nii.gz", image, geometry_from_spacing(SHAPE, SPACING)), truth


def interact(image, prompts, out, model="random-walker") -> int:
    """``volseg interact`` as a user types it."""
    return main(
        ["interact", "--model", str(model), "--image", str(image), "--prompts", str(prompts), "--out", str(out)]
    )


def write_prompts(path, prompts):
    path.write_text(json.dumps(prompts))
    return path


@pytest.mark.slow
def test_interact_replays_prompts_and_writes_the_mask_on_the_scans_grid(tmp_path, scan, capsys):
    path, truth = scan
    prompts = write_prompts(
        tmp_path / "p.json",
        [
            {"click": [12, 24, 24]},
            {"click": [12, 4, 4], "positive": False},
            {"box": [14, 14, 34, 34], "z": 12},
            {"undo": True},
        ],
    )
    out = tmp_path / "mask.nrrd"
    assert interact(path, prompts, out) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == ["1", "2", "3", "4"]
    assert "click + (12, 24, 24)" in lines[0] and "undo" in lines[3] and lines[-1].startswith("wrote")
    written = volumes.read(out, label=True)
    assert written.geometry.same_world_grid(volumes.read_geometry(path))
    dice = 2 * (written.data.astype(bool) & truth).sum() / (written.data.astype(bool).sum() + truth.sum())
    assert dice > 0.8
    # the same prompts through the Python contract give the same mask
    s = open_interactive("random-walker", path)
    s.click((12, 24, 24))
    s.click((12, 4, 4), positive=False)
    assert np.array_equal(s.result(), written.data)


@pytest.mark.parametrize(
    "prompts, words",
    [
        ([{"click": [99, 1, 1]}], "prompt 1: the click at (z, y, x) = (99, 1, 1) is outside the scan"),
        ([{"click": [5, 5, 5]}, {"box": [1, 1, 1, 1], "z": 3}], "prompt 2: the box is 1 x 1 voxels"),
        ([{"box": [1, 1, 9, 9]}], "needs its slice"),
        ([{"swipe": [1, 2, 3]}], "exactly one of click, box, scribble, undo, reset"),
    ],
)
def test_bad_prompts_are_one_line_and_write_nothing(tmp_path, scan, capsys, prompts, words):
    path, _ = scan
    out = tmp_path / "mask.nii.gz"
    code = interact(path, str(write_prompts(tmp_path / "p.json", prompts)), str(out), "random-walker")
    err = capsys.readouterr().err.strip()
    assert code == 1 and words in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_interact_refuses_a_task_model_and_an_unwritable_output_first(
    tmp_path, scan, capsys, tiny_checkpoint, unwritable_dir
):
    path, _ = scan
    prompts = write_prompts(tmp_path / "p.json", [{"click": [12, 24, 24]}])
    assert interact(path, str(prompts), str(tmp_path / "m.nii.gz"), str(tiny_checkpoint)) == 1
    assert "segmentation model, not an interactive one" in capsys.readouterr().err
    assert interact(path, str(prompts), str(unwritable_dir / "m.nii.gz"), "random-walker") == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_interactive_then_finetune_gives_promptable_checkpoints(tmp_path, train_ct_task, capsys):
    out = tmp_path / "prompt.safetensors"
    assert (
        main(
            [
                "train",
                "--interactive",
                "--data",
                str(train_ct_task),
                "--out",
                str(out),
                "--minutes",
                "0.1",
                "--start-from",
                "scratch",
            ]
        )
        == 0
    )
    text = capsys.readouterr()
    assert "checkpoint" in text.out and str(out) in text.out
    checkpoint = ckpt.load(out)
    assert checkpoint.interactive["held_out"]["cases"] >= 1 and checkpoint.interactive["trained_on"]
    assert checkpoint.model_config.in_channels == 5 and checkpoint.labels == {0: "background", 1: "object"}
    case = sorted((train_ct_task / "imagesTr").glob("*.nii.gz"))[0]
    s = open_interactive(out, case)
    mask = s.click(tuple(d // 2 for d in s.shape))
    assert mask.shape == s.shape
    tuned = tmp_path / "tuned.safetensors"
    assert (
        main(["finetune", "--model", str(out), "--data", str(train_ct_task), "--out", str(tuned), "--minutes", "0.05"])
        == 0
    )
    again = ckpt.load(tuned)
    assert again.interactive is not None and again.started_from == str(out)


@pytest.fixture
def promptable(tmp_path, monkeypatch):
    """A promptable checkpoint (random weights) installed in a fresh cache's models folder."""
    from napari_volseg import paths
    from napari_volseg.interactive.net import Settings
    from napari_volseg.interactive.train import LABELS, MODEL_PRESET
    from napari_volseg.models import build_model
    from napari_volseg.models.registry import model_config
    from napari_volseg.planning import Plan

    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    model = build_model(model_config(MODEL_PRESET, in_channels=5, num_classes=2))
    path = paths.models_dir() / "my-interactive.safetensors"
    ckpt.save(path, model, Plan(target_spacing=(1.0, 1.0, 1.0)), LABELS, interactive=Settings(grid=32).to_dict())
    return path


def test_promptable_models_are_listed_apart_and_refused_where_a_scan_is_segmented(promptable, scan, tmp_path, capsys):
    from napari_volseg.interactive.net import PromptNet
    from napari_volseg.zoo.registry import list_models, promptable_models

    assert "my-interactive" not in [e.name for e in list_models(runs=False)]
    assert [e.name for e in promptable_models(runs=False) if e.source == "installed"] == ["my-interactive"]
    net = PromptNet(ckpt.load(promptable))
    assert net.grid == 32 and net.grows  # extent_jitter (0.8, 1.6): trained on views 1.6x the smallest
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.index("promptable models") < out.index("my-interactive")
    path, _ = scan
    assert main(["predict", "--model", "my-interactive", "--out", str(tmp_path / "p"), str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "is a promptable model" in err and len(err.splitlines()) == 1
    s = open_interactive("my-interactive", path)  # by name, through the zoo
    assert s.click((12, 24, 24)).shape == SHAPE


def test_a_promptable_model_exports_with_its_prompt_encoding(promptable, tmp_path):
    out = tmp_path / "prompt.pt"
    assert main(["export", "--model", str(promptable), "--format", "torchscript", "--out", str(out)]) == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["interactive"]["grid"] == 32 and info["interactive"]["channels"][0] == "image"
    assert "sliding_window" not in info and any("channel 4 the current mask" in step for step in info["steps"])
