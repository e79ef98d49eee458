"""Model cards and the registry: names resolve to files, cards travel in the checkpoint, float16 storage."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import write_checkpoint

from napari_volseg import metrics
from napari_volseg.cli import main
from napari_volseg.config import TrainConfig, load_preset
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.infer import Predictor
from napari_volseg.io import decathlon, nifti
from napari_volseg.zoo import registry
from napari_volseg.zoo.card import (
    MSD_ATTRIBUTION,
    MSD_LICENCE,
    TRAINED_BY_KEY,
    HeldOut,
    ModelCard,
    copy_checkpoint,
    read_card,
    write_card,
)

ROOT = Path(__file__).resolve().parents[2]
CARD = ModelCard(
    name="organ",
    description="a test model",
    task="organ segmentation",
    classes={0: "background", 1: "organ"},
    modality="CT",
    expected_spacing_mm=(2.0, 2.0, 2.0),
    training_data="synthetic",
    licence=MSD_LICENCE,
    attribution=MSD_ATTRIBUTION,
    command="python training/make_pretrained.py organ",
    held_out=(HeldOut("a", 0.8, {"organ": 0.8}), HeldOut("b", 0.9, {"organ": 0.9})),
)


def test_card_in_the_checkpoint_header_and_float16_storage(tmp_path):
    src = write_checkpoint(tmp_path / "m.safetensors", cascade=True)
    dst = write_card(src, tmp_path / "shipped.safetensors", CARD, dtype=torch.float16)
    assert read_card(dst) == CARD and CARD.mean_dice == pytest.approx(0.85)
    assert read_card(src) is None
    assert dst.stat().st_size < 0.55 * src.stat().st_size  # both nets, half the bytes
    loaded, original = ckpt.load(dst), ckpt.load(src)
    assert loaded.locator is not None and loaded.plan == original.plan
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        a, b = loaded.build_model().eval()(x), original.build_model().eval()(x)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.01)  # float16 weights: close logits, not identical


def test_names_resolve_shipped_first_then_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(registry, "PRETRAINED_DIR", shipped)
    write_card(write_checkpoint(tmp_path / "a.safetensors"), shipped / "organ.safetensors", CARD)
    (tmp_path / "cache" / "models").mkdir(parents=True)
    write_checkpoint(tmp_path / "cache" / "models" / "organ.safetensors")
    write_checkpoint(tmp_path / "cache" / "models" / "other.safetensors")
    assert registry.resolve("organ") == shipped / "organ.safetensors"
    assert registry.resolve("other") == tmp_path / "cache" / "models" / "other.safetensors"
    assert registry.resolve(tmp_path / "a.safetensors") == tmp_path / "a.safetensors"
    with pytest.raises(registry.UnknownModelError, match="no checkpoint at"):
        registry.resolve(tmp_path / "missing.safetensors")
    labels = [e.label for e in registry.list_models()]
    assert labels[:3] == ["organ (pretrained)", "organ (installed)", "other (installed)"]
    assert registry.list_models()[0].about == "organ segmentation, CT: organ; held-out Dice 0.850 (2 cases)"
    runs = tmp_path / "cache" / "runs"
    runs.mkdir()
    for name in ("run1.safetensors", "run1.last.safetensors", "run1.locator.safetensors"):
        (runs / name).write_bytes(b"x")
    assert [e.name for e in registry.recent_runs()] == ["run1"]
    # a stopped run left only its last weights (the model Stop set): it stays on the list in the next session
    for name in ("run2.last.safetensors", "run2.locator.safetensors", "run3.locator.last.safetensors"):
        (runs / name).write_bytes(b"x")
        os.utime(runs / name, (2e9, 2e9))
    assert [e.name for e in registry.recent_runs()] == ["run2.last", "run1"]


@pytest.mark.parametrize("path", sorted(registry.PRETRAINED_DIR.glob("*.safetensors")), ids=lambda p: p.stem)
def test_every_shipped_model_loads_and_carries_a_complete_card(path):
    card = read_card(path)
    assert card is not None and card.name == path.stem
    assert card.licence == "CC-BY-SA-4.0" and "Simpson" in card.attribution and "Antonelli" in card.attribution
    promptable = "interactive" in ckpt.read_meta(path)  # answers prompts on a region: no one spacing to expect
    script = "make_interactive.py" if promptable else "make_pretrained.py"
    assert card.command.startswith(f"python training/{script} " + path.stem)
    assert card.task and card.modality and (promptable or card.expected_spacing_mm) and card.training_data
    assert card.held_out
    checkpoint = ckpt.load(path)
    assert checkpoint.labels == card.classes and checkpoint.optimizer is None
    checkpoint.build_model()


def test_the_package_ships_msd_heart_and_msd_hippocampus():
    assert {p.stem for p in registry.PRETRAINED_DIR.glob("*.safetensors")} >= {"msd-heart", "msd-hippocampus"}


@pytest.mark.slow
def test_msd_heart_by_name_rescores_its_cards_dice_on_a_held_out_case(heart_dir, tmp_path):
    """`volseg predict --model msd-heart` on the card's first held-out case gives the card's Dice (one case)."""
    card = read_card(registry.resolve("msd-heart"))
    held = card.held_out[0]
    case = decathlon.load_task(heart_dir).case(held.case)
    assert main(["predict", "--model", "msd-heart", "--out", str(tmp_path), str(case.image_path)]) == 0
    pred = nifti.load(tmp_path / case.image_path.name, label=True)
    truth = case.load_label()
    scores = metrics.score_case(pred.data, truth.data, 2, truth.spacing)
    assert metrics.mean_dice(scores) == pytest.approx(held.dice, abs=2e-3)


@pytest.mark.slow
def test_make_pretrained_trains_scores_and_installs_a_carded_float16_model(train_ct_task, tmp_path):
    spec = importlib.util.spec_from_file_location("make_pretrained", ROOT / "training" / "make_pretrained.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.MODELS["msd-hippocampus"].update(folder=train_ct_task.name, held_out=2)
    argv = ["msd-hippocampus", "--data", str(train_ct_task.parent), "--minutes", "0.05"]
    argv += ["--install-dir", str(tmp_path / "pretrained"), "--work", str(tmp_path / "work"), "--provisional"]
    assert script.main(argv) == 0
    installed = tmp_path / "pretrained" / "msd-hippocampus.safetensors"
    card = read_card(installed)
    task = decathlon.load_task(train_ct_task)
    held_ids = [c.id for c in decathlon.training_split(task, TrainConfig(seed=0, val_cases=0, test_cases=2)).test]
    assert [h.case for h in card.held_out] == held_ids and card.weights == "float16"
    assert card.description.startswith("PROVISIONAL") and card.command.endswith("--provisional")
    predictor = Predictor(installed)
    case = task.case(held_ids[0])
    image, truth = case.load()
    scores = metrics.score_case(predictor.predict(image).labels, truth.data, task.num_classes, truth.spacing)
    assert metrics.mean_dice(scores) == pytest.approx(card.held_out[0].dice, abs=2e-3)
    assert all(np.isfinite(h.dice) for h in card.held_out)
    # no validation: the post-processing was decided from the 4 training labels
    decision = predictor.checkpoint.postprocess
    assert decision.rule == "training labels" and decision.cases == 4

    # --checkpoint: card and install a checkpoint trained already (as the accuracy bench's split 0 is)
    trained = tmp_path / "work" / "msd-hippocampus.trained.safetensors"
    bench = "python bench/accuracy.py --tasks hippo --minutes 0.05  # split 0, budget 0.05"
    stamped = copy_checkpoint(trained, tmp_path / "hippo-split0-0.05.safetensors", {TRAINED_BY_KEY: bench})
    argv = ["msd-hippocampus", "--data", str(train_ct_task.parent), "--checkpoint", str(stamped)]
    argv += ["--install-dir", str(tmp_path / "again"), "--work", str(tmp_path / "work2")]
    assert script.main(argv) == 0
    again = read_card(tmp_path / "again" / "msd-hippocampus.safetensors")
    assert again.trained_by == bench and again.command.endswith(
        f"--checkpoint {stamped} --install-dir " + str(tmp_path / "again") + " --work " + str(tmp_path / "work2")
    )
    assert again.held_out == card.held_out and again.description.endswith(
        f"trained on 4 {task.name} cases for 0.05 min"
    )
    assert not (tmp_path / "work2" / "msd-hippocampus.trained.safetensors").exists()  # nothing trained again
    assert not list((tmp_path / "work2").glob("*.infer.safetensors"))  # its inference settings are current already
    # inference settings are not trained: a model whose preset's infer: changed since ships with them as they are now
    meta, tensors = ckpt.read_tensors(stamped)
    older = json.loads(meta["preset"])
    older["infer"]["overlap"] = 0.125
    ckpt.write_atomic(tmp_path / "older.safetensors", tensors, {**meta, "preset": json.dumps(older)})
    argv[argv.index(str(stamped))] = str(tmp_path / "older.safetensors")
    assert script.main(argv) == 0
    shipped = ckpt.load(tmp_path / "again" / "msd-hippocampus.safetensors")
    assert shipped.preset.infer == load_preset("fast-cpu").infer and shipped.preset.infer.overlap == 0.5
    assert shipped.preset.train == ckpt.load(stamped).preset.train  # only the inference settings changed
    argv[argv.index(str(tmp_path / "older.safetensors"))] = str(stamped)
    # a checkpoint that held out other cases is refused: its card would score cases it trained on
    meta, tensors = ckpt.read_tensors(stamped)
    preset = json.loads(meta["preset"])
    seed = next(
        s
        for s in range(1, 50)
        if decathlon.training_split(task, TrainConfig(seed=s, val_cases=0, test_cases=2)).test
        != decathlon.training_split(task, TrainConfig(seed=0, val_cases=0, test_cases=2)).test
    )
    preset["train"]["seed"] = seed
    ckpt.write_atomic(tmp_path / "other.safetensors", tensors, {**meta, "preset": json.dumps(preset)})
    argv[argv.index(str(stamped))] = str(tmp_path / "other.safetensors")
    with pytest.raises(SystemExit, match="not this model's held-out cases"):
        script.main(argv)
